from models.heads import ProjectionHead
from models.resnet import MODEL_NAMES, ResNetEncoder, build_encoder
from models.sdclr import SDCLRNetwork, build_sdclr, dense_state_dict
from models.simclr import build_simclr

__all__ = ["MODEL_NAMES", "ProjectionHead", "ResNetEncoder", "SDCLRNetwork", "build_encoder", "build_sdclr",
           "build_simclr", "dense_state_dict"]
