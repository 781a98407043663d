"""Build the compiled core ``badpix._core`` from ``csrc/`` (metadata lives in pyproject.toml)."""

import os
from glob import glob

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

compile_args = ["-O3", "-pthread"]
link_args = ["-pthread"]
# BADPIX_SANITIZE=1 builds the core with AddressSanitizer + UBSan (CI uses it).
if os.environ.get("BADPIX_SANITIZE"):
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"]
    compile_args = ["-O1", "-g", "-pthread", *san]
    link_args = ["-pthread", *san]

core = Pybind11Extension(
    "badpix._core",
    sorted(glob("csrc/*.cpp")),  # sorted for reproducible builds
    include_dirs=["csrc"],
    cxx_std=17,
    extra_compile_args=compile_args,
    extra_link_args=link_args,
)

setup(ext_modules=[core], cmdclass={"build_ext": build_ext})
