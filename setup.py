"""The one compiled part of hashbank: the exact Hamming index core (plain C, no extra dependency)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "hashbank.index._hamming",
            sources=["src/hashbank/index/_hamming.c"],
            extra_compile_args=["-O3", "-std=c11", "-Wno-unused-parameter"],
        )
    ]
)
