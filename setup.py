"""The ROS-free machine-learning toolkit: `pip install .` on a training box without ROS.

It gives the scene world, the scene language, data generation, the model, training,
evaluation and benchmarks (igllm-data, igllm-train, igllm-eval). The ROS 2 node and its
interfaces are built with colcon from CMakeLists.txt instead (see README).
"""
from setuptools import find_packages, setup

setup(
    name="igllm_ros",
    version="0.1.0",
    description="Inverse-Graphics LLM: images to 3D scene programs (ML toolkit of igllm_ros)",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["igllm_ros", "igllm_ros.*"], exclude=["igllm_ros.ros*"]),
    install_requires=[
        "torch>=2.3",
        "transformers>=4.46",
        "safetensors",
        "numpy",
        "scipy",
        "pillow",
        "pyyaml",
        "tqdm",
        "moderngl",
        "matplotlib",
    ],
    extras_require={"lora": ["peft", "gguf"], "test": ["pytest", "hypothesis"]},
    entry_points={
        "console_scripts": [
            "igllm-data=igllm_ros.data.cli:main",
            "igllm-train=igllm_ros.model.train:main",
            "igllm-eval=igllm_ros.model.evaluate:main",
        ]
    },
)
