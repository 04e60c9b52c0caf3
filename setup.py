"""Builds lossgen and its compiled extension lossgen._C.

The CPU kernels are always built. The CUDA kernels are added when CUDA is usable here (a CUDA
build of torch and a toolkit), or when FORCE_CUDA=1 (e.g. building on a machine without a GPU for
one that has one). FORCE_ONLY_CPU=1 turns CUDA off. LOSSGEN_PORTABLE=1 drops -march=native (use it
when the built extension must run on other CPUs than the one that builds it).

Install with ``pip install --no-build-isolation -e .`` so the build uses the torch you have.
"""

import ctypes.util
import os
import platform
import sys

from setuptools import setup

try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
except ImportError:  # pragma: no cover - only hit by a misconfigured build
    sys.exit("lossgen: install torch first, then `pip install --no-build-isolation -e .`")


def _flag(name: str) -> bool:
    return os.environ.get(name, "0").strip().lower() in ("1", "true", "yes", "on")


def _with_cuda() -> bool:
    if _flag("FORCE_ONLY_CPU"):
        return False
    if _flag("FORCE_CUDA"):
        return True
    return torch.cuda.is_available() and CUDA_HOME is not None


def _libmvec_available() -> bool:
    """glibc's vector math library (x86-64 Linux); LOSSGEN_NO_LIBMVEC=1 opts out."""
    if _flag("LOSSGEN_NO_LIBMVEC") or sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    return ctypes.util.find_library("mvec") is not None


def _extension():
    sources = [
        "csrc/ops.cpp",
        "csrc/ops_mf.cpp",
        "csrc/ops_mlp.cpp",
        "csrc/core/program_check.cpp",
        "csrc/core/eval_cpu.cpp",
        "csrc/core/mf_step.cpp",
        "csrc/core/mlp_step.cpp",
        "csrc/core/score_loss.cpp",
    ]
    # -ffp-contract=off: no fused multiply-adds, so results round like PyTorch's reference.
    # -fno-trapping-math: lets the compiler turn branches over float ops into vector selects
    # (it only assumes no FP exception traps are enabled; results are unchanged).
    # -fopenmp: ATen's parallel_for is an inline OpenMP region in ATen's headers; without the flag
    # it silently runs on one thread. GOMP symbols resolve to torch's own OpenMP runtime.
    cxx = ["-O3", "-std=c++17", "-ffp-contract=off", "-fno-trapping-math", "-fopenmp"]
    if not _flag("LOSSGEN_PORTABLE"):
        cxx.append("-march=native")
    include_dirs = [os.path.abspath("csrc")]
    define_macros, libraries = [], []
    if _libmvec_available():
        # Vector log/exp/tanh from glibc (see csrc/core/eval_cpu.cpp). -fno-math-errno: the
        # kernels never read errno, and errno-setting calls cannot be vectorized.
        cxx += ["-fopenmp-simd", "-fno-math-errno"]
        define_macros.append(("LOSSGEN_USE_LIBMVEC", None))
        libraries.append("mvec")
    if _with_cuda():
        sources += ["csrc/ops_cuda.cpp", "csrc/cuda/eval_cuda.cu"]
        nvcc = ["-O3", "-std=c++17", "--expt-relaxed-constexpr", "-lineinfo"]
        return CUDAExtension(
            "lossgen._C",
            sources,
            include_dirs=include_dirs,
            define_macros=define_macros + [("WITH_CUDA", None)],
            libraries=libraries,
            extra_compile_args={"cxx": cxx, "nvcc": nvcc},
        )
    return CppExtension(
        "lossgen._C",
        sources,
        include_dirs=include_dirs,
        define_macros=define_macros,
        libraries=libraries,
        extra_compile_args={"cxx": cxx},
    )


setup(
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
