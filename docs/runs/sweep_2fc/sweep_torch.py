"""Hyper-parameter sweep for 2fc-1200 LRT on MNIST, K configurations trained at
once as stacked tensors on one GPU (research aid, not part of the repo).

Mirrors the Paddle code: pixels/126, seeded 50k/10k split (numpy default_rng(2021)),
LRT layers, mu ~ N(0, mu_std), rho ~ N(rho_mean, 0.1), loss = mean NLL + c KL / N,
Adam(0.9, 0.999, 1e-8), lr0 * gamma^epoch. Prints validation only, never test.
"""
import gzip, json, math, sys, time
import numpy as np
import torch
import torch.nn.functional as F

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = "cuda"
LOG2PI = 0.5 * math.log(2 * math.pi)


def load(prefix):
    with gzip.open(f"{prefix}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(f"{prefix}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return x, y


def main(spec_path, out_path):
    spec = json.load(open(spec_path))
    spec = spec.get("spec", spec)  # a saved result file holds its spec: run it again
    cfgs, E, S = spec["configs"], spec["epochs"], spec.get("valid_samples", 10)
    K = len(cfgs)
    x, y = load(".gpu/data/train")
    order = np.random.default_rng(2021).permutation(60000)
    tr, va = np.sort(order[10000:]), np.sort(order[:10000])
    X = torch.tensor(x.astype(np.float32) / 126.0, device=dev)
    Y = torch.tensor(y.astype(np.int64), device=dev)
    Xtr, Ytr, Xva, Yva = X[tr], Y[tr], X[va], Y[va]
    N, B = len(tr), 128
    M = math.ceil(N / B)
    g = torch.Generator(device=dev).manual_seed(spec.get("seed", 0))
    torch.manual_seed(spec.get("seed", 0))

    def col(key, default):
        return torch.tensor([float(c.get(key, default)) for c in cfgs], device=dev)

    mu_std, rho_mean = col("mu_std", 0.03), col("rho", -5.0)
    lr0, gamma, beta = col("lr", 1e-3), col("gamma", 0.955), col("beta", 0.1)
    blundell = torch.tensor([c.get("blundell", False) for c in cfgs], device=dev)
    mixture = [c.get("prior", "gauss") == "mixture" for c in cfgs]
    assert mixture == sorted(mixture), "gaussian configs first"
    G = mixture.count(False)
    psig = col("sigma", 0.1)[:G].view(-1, 1, 1)
    pi, s1, s2 = col("pi", 0.5)[G:].view(-1, 1, 1), col("s1", 1.0)[G:].view(-1, 1, 1), col("s2", math.exp(-6))[G:].view(-1, 1, 1)

    sizes = [784, 1200, 1200, 10]
    params = []
    for i in range(3):
        for shape in ([K, sizes[i], sizes[i + 1]], [K, 1, sizes[i + 1]]):
            mu = torch.randn(shape, device=dev) * mu_std.view(-1, 1, 1)
            rho = torch.randn(shape, device=dev) * 0.1 + rho_mean.view(-1, 1, 1)
            params += [mu.requires_grad_(), rho.requires_grad_()]
    state = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]

    def forward(xb, sample=True, kl=True):
        h = xb.expand(K, -1, -1) if xb.dim() == 2 else xb
        klsum = torch.zeros(K, device=dev)
        for i in range(3):
            wm, wr, bm, br = params[4 * i: 4 * i + 4]
            a = torch.baddbmm(bm, h, wm)
            if sample:
                ws, bs = F.softplus(wr), F.softplus(br)
                v = torch.baddbmm(bs * bs, h * h, ws * ws)
                a = a + torch.sqrt(v + 1e-16) * torch.randn_like(a)
                if kl:
                    for m_, s_ in ((wm, ws), (bm, bs)):
                        dims = (1, 2)
                        if G:
                            mg, sg = m_[:G], s_[:G]
                            klg = (torch.log(psig / sg) + (sg * sg + mg * mg) / (2 * psig * psig) - 0.5).sum(dims)
                        else:
                            klg = m_.new_zeros(0)
                        if G < K:
                            mm, sm = m_[G:], s_[G:]
                            eps = torch.randn_like(mm)
                            w = mm + sm * eps
                            logq = (-torch.log(sm) - LOG2PI - 0.5 * eps * eps)
                            lp1 = torch.log(pi) - torch.log(s1) - LOG2PI - 0.5 * (w / s1) ** 2
                            lp2 = torch.log1p(-pi) - torch.log(s2) - LOG2PI - 0.5 * (w / s2) ** 2
                            klm = (logq - torch.logaddexp(lp1, lp2)).sum(dims)
                        else:
                            klm = m_.new_zeros(0)
                        klsum = klsum + torch.cat([klg, klm])
            h = torch.relu(a) if i < 2 else a
        return h, klsum

    @torch.no_grad()
    def validate(samples):
        correct = torch.zeros(K, device=dev)
        for j in range(0, len(Xva), 2500):
            xb, yb = Xva[j:j + 2500], Yva[j:j + 2500]
            if samples == 0:
                logits, _ = forward(xb, sample=False)
                pred = logits.argmax(-1)
            else:
                probs = sum(torch.softmax(forward(xb, kl=False)[0], -1) for _ in range(samples))
                pred = probs.argmax(-1)
            correct += (pred == yb).float().sum(-1)
        return (100 * correct / len(Xva)).tolist()

    hist = {"mean": [], "mc": [], "kl": [], "nll": []}
    t0 = time.time()
    step = 0
    for ep in range(E):
        lr = (lr0 * gamma ** ep).view(-1, 1, 1)
        perm = torch.randperm(N, device=dev, generator=g)
        nll_acc = torch.zeros(K, device=dev)
        kl_acc = torch.zeros(K, device=dev)
        for i in range(M):
            idx = perm[i * B:(i + 1) * B]
            logits, kl = forward(Xtr[idx])
            yb = Ytr[idx]
            nll = F.cross_entropy(logits.reshape(-1, 10), yb.repeat(K), reduction="none").view(K, -1).mean(-1)
            bw = torch.where(blundell, torch.tensor(2.0 ** -(i + 1) / (1 - 2.0 ** -M) * M, device=dev), beta)
            loss = (nll + bw * kl / N).sum()
            for p in params:
                p.grad = None
            loss.backward()
            step += 1
            with torch.no_grad():
                bc1, bc2 = 1 - 0.9 ** step, 1 - 0.999 ** step
                for p, (m, v) in zip(params, state):
                    m.mul_(0.9).add_(p.grad, alpha=0.1)
                    v.mul_(0.999).addcmul_(p.grad, p.grad, value=0.001)
                    p.sub_(lr * (m / bc1) / ((v / bc2).sqrt() + 1e-8))
            nll_acc += nll.detach()
            kl_acc += kl.detach()
        hist["nll"].append((nll_acc / M).tolist())
        hist["kl"].append((kl_acc / M / N).tolist())
        hist["mean"].append(validate(0))
        hist["mc"].append(validate(S) if (ep % 10 == 9 or ep >= E - 10) else None)
        if ep % 10 == 9 or ep == E - 1 or ep == 0:
            print(f"epoch {ep + 1} {time.time() - t0:.0f}s mean {['%.2f' % a for a in hist['mean'][-1]]}", flush=True)
            json.dump({"spec": spec, "hist": hist, "seconds": time.time() - t0}, open(out_path, "w"))
    json.dump({"spec": spec, "hist": hist, "seconds": time.time() - t0}, open(out_path, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
