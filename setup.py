"""Build script.  Metadata lives in pyproject.toml; install with

    pip install --no-build-isolation -e .

so the build uses the torch that is already installed (the C++/CUDA extension
under csrc/, once it exists, must compile against exactly that torch).
"""

from setuptools import setup

setup()
