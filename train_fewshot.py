r"""Few-shot linear probing: train_linear.py with the 1% protocol's defaults.

    python train_fewshot.py PROBE_NAME --checkpoint checkpoints/run/model.pt --dataset cifar10 --data ~/data \
        --trainSplit split1_S_b --valSplit valIdxList

100 epochs, learning-rate decay x0.1 at epochs 40 and 60, trained on the split's 1% balanced subset
(S_b: 45 images per class for CIFAR-10, 4 for CIFAR-100). Every other flag is train_linear.py's.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from a checkout without installing

import train_linear  # noqa: E402


def main(argv=None) -> Path:
    return train_linear.main(argv, few_shot=True, description=__doc__)


if __name__ == "__main__":
    main()
