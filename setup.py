"""tvm-ledg: a compiler-integrated latency cost model for Apache TVM."""

from setuptools import find_packages, setup

setup(
    name="tvm-ledg",
    version="0.1.0",
    description="LeDG-Former latency prediction for TVM Relax models on any hardware target",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tvm_ledg", "tvm_ledg.*", "cost_model", "cost_model.*", "targets", "targets.*"]),
    package_data={"targets": ["descriptors/*.yaml", "microarchitectures.yaml"], "cost_model": ["checkpoints/**/*"]},
    include_package_data=True,
    # Compatible ranges for users; CI installs the exact pins of requirements-ci.txt.
    install_requires=[
        "apache-tvm>=0.27,<0.28",
        "apache-tvm-ffi>=0.1.14,<0.1.15",  # 0.1.15.x segfaults in IR serialization (MetaSchedule)
        "torch>=2.6",  # safe torch.load(weights_only=True) allowlists,
        "onnx>=1.16",
        "onnxruntime>=1.18",
        "numpy>=1.26",
        "scipy>=1.11",
        "PyYAML>=6.0",
        "tqdm>=4.66",
        "safetensors>=0.4",
        "transformers>=4.40",
    ],
    extras_require={
        "tune": ["psutil>=5.9", "cloudpickle>=2.0", "xgboost>=2.0"],
        "rpc": ["tornado>=6.0"],  # TVM's RPC tracker
        "plots": ["matplotlib>=3.8"],
        "test": ["pytest>=8", "pytest-timeout>=2.3"],
    },
    entry_points={"console_scripts": ["tvm-ledg=tvm_ledg.cli:main"]},
)
