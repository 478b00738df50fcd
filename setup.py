from setuptools import find_packages, setup

setup(
    name="ltssl",
    version="0.1.0",
    description="Self-supervised pre-training on long-tailed image data with extra out-of-distribution data "
                "(SimCLR, COLT, MAK), with linear and few-shot probing",
    python_requires=">=3.10",
    packages=find_packages(include=["models", "models.*", "losses", "losses.*", "data", "data.*",
                                    "utils", "utils.*", "splits", "splits.*"]),
    py_modules=["train_simclr"],
    install_requires=[
        "torch>=2.4,<3",
        "torchvision>=0.19",
        "numpy>=1.24",
        "scikit-learn>=1.3",
        "matplotlib>=3.7",
        "opencv-python-headless>=4.8",
        "pillow>=10",
        "tqdm>=4.60",
        "tensorboard>=2.14",
    ],
    extras_require={"test": ["pytest>=7"]},
    entry_points={"console_scripts": ["ltssl-pretrain=train_simclr:main"]},
)
