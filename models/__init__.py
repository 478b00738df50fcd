from models.heads import ProjectionHead
from models.resnet import MODEL_NAMES, ResNetEncoder, build_encoder
from models.simclr import build_simclr

__all__ = ["MODEL_NAMES", "ProjectionHead", "ResNetEncoder", "build_encoder", "build_simclr"]
