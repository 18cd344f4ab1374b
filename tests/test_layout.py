"""How the modules reach each other, read from their imports: only main.py imports a
mode file, no package imports a root file, and no import cycle exists."""
import ast
import os

from conftest import REPO

MODE_FILES = {"main", "train", "eval", "predict", "ood", "export", "infer", "prune"}
PACKAGES = ("model", "data", "utils", "bench")


def _modules() -> dict:
    """module name -> the project modules it imports (anywhere in the file)."""
    found = {}
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("tests", "__pycache__", "docs", "tools")]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                module = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".").removesuffix(".__init__")
                found[module] = path
    project = set(found)
    imports = {}
    for module, path in found.items():
        names = set()
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        imports[module] = {n for n in names if n in project and n != module}
    return imports


def test_only_main_imports_mode_files_and_no_package_imports_a_root_file():
    imports = _modules()
    root_files = {m for m in imports if "." not in m and m not in PACKAGES}
    for module, names in imports.items():
        if module == "main":
            continue
        if module in MODE_FILES:
            assert not names & MODE_FILES, f"mode file {module} imports mode file(s) {names & MODE_FILES}"
        if module.split(".")[0] in PACKAGES:
            assert not names & root_files, f"{module} imports root file(s) {names & root_files}"


def test_no_import_cycles():
    imports = _modules()
    # a package's __init__ counts as the package: edges to 'data' are edges to data/__init__.py
    state: dict = {}

    def visit(module, trail):
        state[module] = "open"
        for dep in sorted(imports.get(module, ())):
            if state.get(dep) == "open":
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(dep):] + [dep]) if dep in trail else dep)
            if dep not in state:
                visit(dep, trail + [dep])
        state[module] = "done"

    for module in sorted(imports):
        if module not in state:
            visit(module, [module])


def test_the_readmes_layout_names_every_module():
    readme = open(os.path.join(REPO, "README.md")).read()
    layout = readme.split("## Layout", 1)[1].split("```")[1]  # the tree block of that section
    missing = []
    for folder in ("", "data", "model", "model/layers", "utils", "bench", "tools"):
        for name in sorted(os.listdir(os.path.join(REPO, folder))):
            if name.endswith(".py") and name != "__init__.py" and name not in layout:
                missing.append(os.path.join(folder, name))
    assert not missing, f"README's Layout does not name {missing}"
