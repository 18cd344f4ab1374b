"""MKL's code path: set before Paddle loads, only where MKL would take its slow one."""
import os
import subprocess
import sys

from utils.blas import AVX2_PATH, OPT_OUT, VARIABLE, cpu_vendor_and_flags, decide

from conftest import REPO

AMD_AVX2 = ("AuthenticAMD", {"sse2", "avx", "avx2", "avx512f"})


def test_a_non_intel_cpu_with_avx2_gets_the_avx2_path():
    value, line = decide({}, *AMD_AVX2)
    assert value == AVX2_PATH and "AVX2 kernels" in line and f"{OPT_OUT}=0" in line


def test_intel_cpus_and_cpus_without_avx2_keep_mkls_own_choice():
    assert decide({}, "GenuineIntel", {"avx2"})[0] is None
    assert decide({}, "AuthenticAMD", {"sse2", "avx"})[0] is None
    assert decide({}, "", set())[0] is None  # no /proc/cpuinfo (macOS)


def test_the_users_own_value_wins_and_the_projects_variable_turns_it_off():
    value, line = decide({VARIABLE: "2"}, *AMD_AVX2)
    assert value is None and "=2 as set by the user" in line
    value, line = decide({OPT_OUT: "0"}, *AMD_AVX2)
    assert value is None and f"{OPT_OUT}=0" in line


def test_a_value_set_by_this_module_in_a_parent_process_is_reported_as_ours():
    value, line = decide({VARIABLE: AVX2_PATH, "BBB_FAST_BLAS_SET": AVX2_PATH}, *AMD_AVX2)
    assert value is None and "set by bbb-paddle" in line


def test_cpuinfo_is_read_for_vendor_and_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2\n\nprocessor\t: 1\nvendor_id\t: other\n")
    assert cpu_vendor_and_flags(str(info)) == ("AuthenticAMD", {"fpu", "sse2", "avx2"})
    assert cpu_vendor_and_flags(str(tmp_path / "missing")) == ("", set())


def _environment_after_main_imports(env):
    # main.py's first import, then Paddle: what MKL sees when it loads
    code = "import os, main, paddle; print(os.environ.get('MKL_DEBUG_CPU_TYPE'))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_main_sets_it_before_paddle_loads_and_a_launch_worker_inherits_or_sets_it_too():
    env = {k: v for k, v in os.environ.items() if k not in (VARIABLE, OPT_OUT, "BBB_FAST_BLAS_SET")}
    expected = decide({}, *cpu_vendor_and_flags())[0]
    assert _environment_after_main_imports(env) == str(expected)
    # paddle.distributed.launch's workers run main.py with the launcher's environment
    assert _environment_after_main_imports(dict(env, **{VARIABLE: "7"})) == "7"
    assert _environment_after_main_imports(dict(env, **{OPT_OUT: "0"})) == "None"
