"""Run, inference and split names, and the report's method labels."""
from utils import names


def test_method_labels():
    labels = {(p, b, c): names.method_label(p, b, c) for p in (0, 1) for b in (0, 1) for c in (0, 1)}
    assert labels == {(0, 0, 0): "SimCLR", (0, 0, 1): "SimCLR+COLT", (1, 0, 0): "SDCLR", (1, 0, 1): "SDCLR+COLT",
                      (0, 1, 0): "BCL-I", (0, 1, 1): "BCL-I+COLT", (1, 1, 0): "BCL-D", (1, 1, 1): "BCL-D+COLT"}
    assert [names.is_pruned_label(label) for label in ("SDCLR+COLT", "BCL-D", "BCL-I", "SimCLR", "COLT")] == \
        [True, True, False, False, False]


def test_names():
    assert names.split_stem("/a/b/split1_D_i.npy") == "split1_D_i" == names.split_stem("split1_D_i")
    assert names.split_stem("lists/ImageNet_900_train.txt") == "ImageNet_900_train"
    assert names.launcher_run_name("SDCLR", "/x/split2_D_b.npy") == "SDCLR_split2_D_b"
    run = names.release_run_name("imageNet_100_LT_train", "res50", 1000, 256, 10)
    assert run == "imageNet_100_LT_train_res50_scheduling_sgd_lr0.5_temp0.2_epoch1000_batch256_s10"
    assert names.added_run_name(run, "Imagenet900", "x_s10") == run + "_addImagenet900x_s10"
    assert names.inference_name("imagenet-900", "ImageNet_900_train", True, run) == \
        f"Infer_imagenet-900_ImageNet_900_train_noAug__{run}"
    assert names.inference_name("cifar10", "all", False) == "Infer_cifar10_all"
    assert names.mak_split_name("mak", 10000, 10) == "optimize_0.5lossR10_nearK10_coreR1.5_num10000_s10"
    assert names.mak_split_name("mak", 20000, 20, 0, 10, 10, 1) == "optimize_0.0lossR10_nearK10_coreR1.0_num20000_s20"
    assert names.mak_split_name("kcenter", 5, 1) == "kcenter_num5_s1"
