"""SDCLR's two-branch network: global magnitude masks against a brute-force sort, the one-pass step against
the release's two passes, the dense branch as plain SimCLR, checkpoint conversion (ours and the release's),
masks under DDP, SyncBatchNorm, torch.compile and CUDA."""
import ast
import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import infer_features
import train_linear
from models import build_simclr
from models.pretrained import load_simclr
from models.sdclr import (DualBatchNorm, MaskedConv2d, build_sdclr, dense_state_dict, magnitude_keep,
                          prune_count)
from tests.conftest import REPO_ROOT
from tests.multiprocess import run_processes
from tests.test_probe import probe_args
from tests.test_train import synthetic_root  # noqa: F401 (fixture)
from utils.device import to_device


def tiny(dual_bn=True, name="res18", width=4, cifar_stem=True, seed=0):
    torch.manual_seed(seed)
    return build_sdclr(name, width=width, cifar_stem=cifar_stem, output_ch=8, dual_bn=dual_bn)


def randomise_batchnorms(net, seed=1):
    """BatchNorm affine parameters and running statistics away from their initial values, so that the two
    sets of a dual BatchNorm, and the dense and pruned branches in eval mode, differ."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                for t in (m.weight, m.bias, m.running_mean):
                    t.copy_(torch.randn(t.shape, generator=g) * 0.5 + (1.0 if t is m.weight else 0.0))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def conv_weights(net):
    return [m.weight for m in net.masked_convs()]


def all_masks(net):
    return torch.cat([m.mask.reshape(-1) for m in net.masked_convs()])


def simclr_conv_names(name="res18"):
    plain = build_simclr(name, width=4, output_ch=8)
    return [n for n, m in plain.named_modules() if isinstance(m, nn.Conv2d)]


def plain_weights_of_branch(net, pruned: bool) -> dict:
    """build_simclr weights that compute one branch of ``net``, written independently of dense_state_dict:
    the branch's BatchNorm set, and for the pruned branch every conv weight multiplied by its mask."""
    drop, keep = (".dense.", ".pruned.") if pruned else (".pruned.", ".dense.")
    weights = {k.replace(keep, "."): v.clone() for k, v in net.state_dict().items() if drop not in k}
    if pruned:
        for name, m in net.named_modules():
            if isinstance(m, MaskedConv2d):
                weights[f"{name}.weight"] = m.weight.detach() * m.mask
    return weights


def plain_network(net, pruned: bool):
    plain = build_simclr("res18", width=net.conv1.out_channels, output_ch=8)
    plain.load_state_dict(plain_weights_of_branch(net, pruned))
    return plain


# ---------------------------------------------------------------- masks


def brute_force_masks(magnitudes: np.ndarray, k: int) -> np.ndarray:
    """Keep everything but the k first entries of a stable sort by magnitude (ties in position order)."""
    keep = np.ones(magnitudes.size, dtype=bool)
    keep[np.argsort(magnitudes, kind="stable")[:k]] = False
    return keep


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("percent", [0, 10, 30, 50, 70, 90, 99])
def test_global_masks_prune_exactly_the_smallest_magnitudes(ties, percent):
    net = tiny()
    if ties:  # a few levels only, zeros among them: many ties at every threshold
        with torch.no_grad():
            for w in conv_weights(net):
                w.copy_((w * 8).round() / 8)
    magnitudes = torch.cat([w.detach().reshape(-1).abs() for w in conv_weights(net)]).numpy()
    n = magnitudes.size
    k = -(-percent * n // 100)  # ceil(p N) in integers
    threshold = net.update_masks(percent / 100)
    keep = all_masks(net).numpy()
    assert (~keep).sum() == k
    assert net.density() == (n - k) / n
    np.testing.assert_array_equal(keep, brute_force_masks(magnitudes, k))
    if k:
        assert threshold == np.sort(magnitudes)[k - 1]
    if not ties and k:  # the release's rule: keep |w| >= the (k+1)-th smallest magnitude
        np.testing.assert_array_equal(keep, magnitudes >= np.sort(magnitudes)[k])


@pytest.mark.parametrize("n", [100, 1000])
@pytest.mark.parametrize("percent", [7, 14, 28, 30, 55, 70, 90])
def test_density_is_exactly_one_minus_p_when_p_n_is_whole(percent, n):
    # in floating point 0.07 * 100 = 7.000000000000001 and 0.55 * 100 = 55.00000000000001: ceil would
    # prune one more
    magnitudes = torch.tensor(np.random.default_rng(percent).integers(0, 5, n), dtype=torch.float32)  # ties
    keep, threshold = magnitude_keep(magnitudes, percent / 100)
    assert n - keep.sum().item() == n * percent // 100
    assert (magnitudes[~keep] <= threshold).all() and (magnitudes[keep] >= threshold).all()
    np.testing.assert_array_equal(keep.numpy(), brute_force_masks(magnitudes.numpy(), n * percent // 100))


def test_prune_count_refuses_percentages_outside_0_1():
    assert prune_count(0.07, 100) == 7 and prune_count(0.3, 11) == 4 and prune_count(0, 5) == 0
    for bad in (-0.1, 1.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="prune_percent"):
            prune_count(bad, 10)


def test_only_convolutions_are_masked_and_batchnorm_head_and_biases_are_not():
    net = tiny(dual_bn=False)
    masked = [n for n, m in net.named_modules() if isinstance(m, MaskedConv2d)]
    assert masked == simclr_conv_names()  # stem, block and shortcut convs, nothing else
    assert any("downsample" in n for n in masked)
    assert [n for n, _ in net.named_buffers() if n.endswith("mask")] == [f"{n}.mask" for n in masked]
    assert not any(k.endswith("mask") for k in net.state_dict())  # masks are never saved


@pytest.mark.parametrize("dual_bn", [False, True])
def test_pruned_branch_is_simclr_with_masked_conv_weights(dual_bn):
    # everything else (BatchNorm, head, biases) enters unpruned: the plain network holds it unmasked
    net = tiny(dual_bn)
    randomise_batchnorms(net)
    net.update_masks(0.7)
    x = torch.randn(6, 3, 32, 32)
    for train in (True, False):
        net.train(train)
        reference = plain_network(net, pruned=True).train(train)
        torch.testing.assert_close(net.forward_branch(x, pruned=True), reference(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(net.features(x, pruned=True), reference.features(x), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- dense branch


@pytest.mark.parametrize("dual_bn", [False, True])
def test_plain_forward_and_features_are_the_dense_simclr_network(dual_bn):
    net = tiny(dual_bn)
    randomise_batchnorms(net)
    net.update_masks(0.5)  # the dense branch ignores the masks
    plain = build_simclr("res18", width=4, output_ch=8)
    plain.load_state_dict(dense_state_dict(net.state_dict()))  # strict: every key of build_simclr
    x = torch.randn(6, 3, 32, 32)
    # eval first: in training mode net(x, x) also moves the running statistics (shared without dual BN)
    for train in (False, True):
        net.train(train), plain.train(train)
        assert torch.equal(net(x), plain(x))
        assert torch.equal(net.features(x), plain.features(x))
        assert torch.equal(net.fc(net.features(x)), plain.fc(plain.features(x)))
        assert torch.equal(net(x, x)[0], plain(x))


def test_without_pruning_and_dual_bn_both_branches_are_one_network():
    net = tiny(dual_bn=False)
    net.update_masks(0.0)
    x = torch.randn(6, 3, 32, 32)
    z1, z2 = net(x, x)
    assert torch.equal(z1, z2)
    assert net.density() == 1.0


def test_dual_batchnorm_uses_one_set_per_branch():
    for norm in (nn.BatchNorm1d(5), nn.BatchNorm2d(5)):
        dual = DualBatchNorm(norm)
        with torch.no_grad():
            dual.pruned.weight.fill_(2.0)
        x = torch.randn(8, 5) if isinstance(norm, nn.BatchNorm1d) else torch.randn(8, 5, 3, 3)
        torch.testing.assert_close(dual(x, pruned=True), 2 * dual(x))
        assert dual.dense is norm and dual.pruned.num_batches_tracked.item() == 1


# ---------------------------------------------------------------- one pass against the release's two passes


def nt_xent64(z1, z2, temperature=0.2):
    """NT-Xent in float64 from its definition (the project's loss computes in float32)."""
    u = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    s = u @ u.t() / temperature
    s = s.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return -(s[torch.arange(2 * n), positive] - torch.logsumexp(s, dim=1)).mean()


@pytest.mark.parametrize("dual_bn", [False, True])
def test_one_forward_one_backward_gives_the_two_pass_gradient(dual_bn):
    net = tiny(dual_bn).double()
    net.update_masks(0.7)
    ours, release = net, copy.deepcopy(net)
    x1, x2 = torch.randn(8, 3, 32, 32, dtype=torch.float64), torch.randn(8, 3, 32, 32, dtype=torch.float64)

    z1, z2 = ours(x1, x2)
    nt_xent64(z1, z2).backward()

    # The release (prune/prune_simCLR.py): the pruned branch without gradient, the dense branch and backward;
    # then the pruned branch again against the detached dense features, and backward; gradients accumulate.
    # BatchNorm running statistics differ (the release forwards the pruned branch twice); outputs do not:
    # in training mode BatchNorm normalises with the batch's own statistics.
    with torch.no_grad():
        z2_no_grad = release.forward_branch(x2, pruned=True)
    z1 = release.forward_branch(x1, pruned=False)
    nt_xent64(z1, z2_no_grad.detach()).backward()
    z2 = release.forward_branch(x2, pruned=True)
    nt_xent64(z1.detach(), z2).backward()

    ours_grads, release_grads = dict(ours.named_parameters()), dict(release.named_parameters())
    assert ours_grads.keys() == release_grads.keys()
    for name, p in ours_grads.items():
        assert p.grad is not None, name
        # float64 throughout: the two orders of summation agree to rounding (about 1e-13 here)
        torch.testing.assert_close(p.grad, release_grads[name].grad, rtol=1e-9, atol=1e-11, msg=name)
    if dual_bn:  # each BatchNorm set gets the gradient of its own branch only
        assert ours.bn1.pruned.weight.grad.abs().sum() > 0 and ours.bn1.dense.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------- checkpoints


def release_state_dict(net, prefix="module.", head_copies=False) -> dict:
    """A state dict in the SDCLR release's layout (models/resnet_prune_multibn.py) holding ``net``'s weights:
    BatchNorm sets as bn_list.0 (nonprune) / bn_list.1 (prune), the shortcut as downsample.conv / .bn, the
    input normalisation buffers, and with ``head_copies`` proj_head_dual's *_prune head layers."""
    out = {}
    for key, value in net.state_dict().items():
        key = key.replace(".dense.", ".bn_list.0.").replace(".pruned.", ".bn_list.1.")
        key = key.replace("downsample.0.", "downsample.conv.").replace("downsample.1.", "downsample.bn.")
        out[prefix + key] = value.clone()
        if head_copies and key.startswith("fc."):
            layer = key.split(".")[1]
            out[prefix + key.replace(f"fc.{layer}.", f"fc.{layer}_prune.")] = torch.randn_like(value.float())
    out[prefix + "normalize.mean"] = torch.tensor([0.485, 0.456, 0.406])
    out[prefix + "normalize.std"] = torch.tensor([0.229, 0.224, 0.225])
    return out


def test_dense_state_dict_of_ours_and_plain_weights():
    net = tiny()
    dense = dense_state_dict({f"module.{k}": v for k, v in net.state_dict().items()})
    expected = plain_weights_of_branch(net, pruned=False)
    assert list(dense) == list(build_simclr("res18", width=4, output_ch=8).state_dict())
    assert all(torch.equal(dense[k], expected[k]) for k in expected)
    again = dense_state_dict(dense)  # idempotent on plain weights
    assert list(again) == list(dense) and all(again[k] is dense[k] for k in dense)
    shared_bn = tiny(dual_bn=False).state_dict()
    assert list(dense_state_dict(shared_bn)) == list(shared_bn)


@pytest.mark.parametrize("layout", ["sdclr", "sdclr_head_copies", "bcl", "no_dual_bn"])
def test_dense_state_dict_of_the_releases(layout):
    net = tiny(dual_bn=layout != "no_dual_bn")
    randomise_batchnorms(net)
    prefix = "backbone." if layout == "bcl" else "module."
    release = release_state_dict(net, prefix=prefix, head_copies=layout == "sdclr_head_copies")
    dense = dense_state_dict(release)
    expected = dense_state_dict(net.state_dict())
    assert list(dense) == list(expected)
    assert all(torch.equal(dense[k], expected[k]) for k in expected)


def test_dense_state_dict_refuses_other_normalisation_and_clashing_keys():
    weights = release_state_dict(tiny())
    weights["module.normalize.mean"] = torch.tensor([0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="normalize.mean"):
        dense_state_dict(weights)
    plain = build_simclr("res18", width=4, output_ch=8).state_dict()
    with pytest.raises(ValueError, match="both give 'bn1.weight'"):
        dense_state_dict({**plain, "bn1.bn_list.0.weight": plain["bn1.weight"]})


@pytest.mark.parametrize("layout", ["ours", "release"])
def test_loaders_give_the_dense_branch(tmp_path, layout):
    net = tiny()
    randomise_batchnorms(net)
    net.update_masks(0.5)
    weights = {f"module.{k}": v for k, v in net.state_dict().items()} if layout == "ours" else \
        release_state_dict(net)
    torch.save({"state_dict": weights, "args": {"dataset": "synthetic"}}, tmp_path / "model.pt")
    x = torch.randn(4, 3, 32, 32)
    net.eval()
    loaded, args = load_simclr(tmp_path / "model.pt")
    loaded.eval()
    assert args == {"dataset": "synthetic"}
    assert torch.equal(loaded(x), net(x)) and torch.equal(loaded.features(x), net.features(x))
    encoder, _ = train_linear.load_encoder(tmp_path / "model.pt", torch.device("cpu"))
    assert torch.equal(encoder.eval().features(x), net.features(x))


def test_mak_inference_reads_the_dense_branch_of_a_release_checkpoint(tmp_path):
    net = tiny()
    randomise_batchnorms(net)
    torch.save({"state_dict": release_state_dict(net, head_copies=True)}, tmp_path / "model.pt")
    images = np.random.default_rng(0).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "pool.npy", images)
    out = infer_features.main(["pool", "--checkpoint", str(tmp_path / "model.pt"), "--inference_dataset",
                               "300K_random_images", "--inference_dataset_split", str(tmp_path / "pool.npy"),
                               "--inference_noAug", "--save-dir", str(tmp_path / "infer"), "--num_workers", "0",
                               "--device", "cpu", "--chunk_size", "25", "--batch_size", "8"])
    [chunk] = sorted(Path(out).glob("r*_c*.npz"))
    stored = np.load(chunk)
    with torch.no_grad():
        x = to_device(torch.from_numpy(images).permute(0, 3, 1, 2), torch.device("cpu"))
        net.eval()
        np.testing.assert_allclose(stored["feat"], net.features(x).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stored["proj"], net(x).numpy(), rtol=1e-5, atol=1e-6)


def test_probe_trains_on_an_sdclr_checkpoint(synthetic_root, tmp_path):  # noqa: F811 (fixture)
    net = tiny()
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()},
                "args": {"dataset": "synthetic"}}, tmp_path / "model.pt")
    run_dir = train_linear.main(probe_args(tmp_path / "model.pt", tmp_path / "probes", synthetic_root, "sdclr",
                                           "--cached_features", "--epochs", "1", "--decreasing_lr", "1"))
    results = json.loads((run_dir / "results.json").read_text())
    assert 0 <= results["all"] <= 100
    probe = torch.load(run_dir / "probe.pt", weights_only=True)
    expected = plain_weights_of_branch(net, pruned=False)
    assert all(torch.equal(v, expected[k]) for k, v in probe["encoder"].items())


# ---------------------------------------------------------------- SyncBatchNorm, memory format, compile


@pytest.mark.parametrize("dual_bn", [False, True])
def test_sync_batchnorm_conversion_reaches_both_sets(dual_bn):
    net = tiny(dual_bn)
    randomise_batchnorms(net)
    net.update_masks(0.5)
    n_plain = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in build_simclr("res18", 4, True, 8).modules())
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(net))
    norms = [m for m in synced.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert all(isinstance(m, nn.SyncBatchNorm) for m in norms)
    assert len(norms) == n_plain * (2 if dual_bn else 1)
    duals = [m for m in synced.modules() if isinstance(m, DualBatchNorm)]
    assert len(duals) == (n_plain if dual_bn else 0)
    assert all(isinstance(d.dense, nn.SyncBatchNorm) and isinstance(d.pruned, nn.SyncBatchNorm) for d in duals)
    assert all(torch.equal(a, b) for a, b in zip(all_masks(synced), all_masks(net)))
    x1, x2 = torch.randn(6, 3, 32, 32), torch.randn(6, 3, 32, 32)
    for train in (True, False):  # without a process group SyncBatchNorm normalises like BatchNorm
        net.train(train), synced.train(train)
        for a, b in zip(synced(x1, x2), net(x1, x2)):
            torch.testing.assert_close(a, b)


def test_channels_last_gives_the_same_branches_and_masks():
    net = tiny()
    net.update_masks(0.7)
    last = copy.deepcopy(net).to(memory_format=torch.channels_last)
    assert last.conv1.mask.is_contiguous(memory_format=torch.channels_last)
    last.update_masks(0.7)  # masks follow the weights' logical order, not their memory layout
    assert torch.equal(all_masks(last), all_masks(net))
    x1, x2 = torch.randn(6, 3, 32, 32), torch.randn(6, 3, 32, 32)
    for a, b in zip(last(x1.contiguous(memory_format=torch.channels_last),
                         x2.contiguous(memory_format=torch.channels_last)), net(x1, x2)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)  # other conv kernels: float rounding


def test_both_branches_compile_as_one_graph():
    net = tiny()
    net.update_masks(0.7)
    compiled = torch.compile(net, backend="eager", fullgraph=True)  # fullgraph: a graph break is an error
    x1, x2 = torch.randn(6, 3, 32, 32), torch.randn(6, 3, 32, 32)
    expected = copy.deepcopy(net)(x1, x2)
    for a, b in zip(compiled(x1, x2), expected):
        torch.testing.assert_close(a, b)


# ---------------------------------------------------------------- DDP


def _ddp_masks(rank, world_size):
    from torch.nn.parallel import DistributedDataParallel

    from losses.nt_xent import nt_xent
    from utils.distributed import all_gather_with_grad

    torch.set_num_threads(1)
    results = {}
    for broadcast_buffers in (False, True):  # False: DDP does not copy rank 0's masks, they must agree anyway
        torch.manual_seed(0)
        net = build_sdclr("res18", width=4, output_ch=8, dual_bn=True)
        model = DistributedDataParallel(net, broadcast_buffers=broadcast_buffers)
        optimizer = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
        g = torch.Generator().manual_seed(100 + rank)  # each rank its own data
        masks = []
        for _epoch in range(3):
            net.update_masks(0.7)
            masks.append(torch.cat([m.mask.reshape(-1) for m in net.masked_convs()]).numpy())
            for _step in range(2):
                z1, z2 = model(torch.randn(4, 3, 32, 32, generator=g), torch.randn(4, 3, 32, 32, generator=g))
                loss = nt_xent(all_gather_with_grad(z1), all_gather_with_grad(z2))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        results[broadcast_buffers] = masks
    return results


def test_masks_agree_across_ranks_after_ddp_steps():
    rank0, rank1 = run_processes(_ddp_masks, 2)
    for broadcast_buffers in (False, True):
        for a, b in zip(rank0[broadcast_buffers], rank1[broadcast_buffers]):
            np.testing.assert_array_equal(a, b)
        first, last = rank0[broadcast_buffers][0], rank0[broadcast_buffers][-1]
        assert (first != last).any()  # the weights moved across a threshold: the masks were rebuilt
        assert (~first).sum() == (~last).sum()


# ---------------------------------------------------------------- CUDA


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pruned_forward_on_cuda_matches_the_cpu():
    net = tiny(width=8)
    randomise_batchnorms(net)
    net.update_masks(0.7)
    cuda = copy.deepcopy(net).cuda().to(memory_format=torch.channels_last)
    cuda.update_masks(0.7)  # computed on the device from the same weights: the same masks
    assert torch.equal(all_masks(cuda).cpu(), all_masks(net))
    x = torch.randn(8, 3, 32, 32)
    xc = x.cuda().contiguous(memory_format=torch.channels_last)
    for train in (True, False):
        net.train(train), cuda.train(train)
        expected = net.forward_branch(x, pruned=True)
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):  # TF32 convolutions differ by ~1e-3
            torch.testing.assert_close(cuda.forward_branch(xc, pruned=True).cpu(), expected, rtol=1e-4, atol=1e-4)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low = cuda.forward_branch(xc, pruned=True).float().cpu()
        assert F.cosine_similarity(low, expected, dim=1).min() > 0.99  # bf16 keeps about 3 digits


# ---------------------------------------------------------------- layering


def test_sdclr_model_imports_no_data_or_entry_point():
    entry_points = {p.stem for p in REPO_ROOT.glob("*.py")}
    tree = ast.parse((REPO_ROOT / "models" / "sdclr.py").read_text())
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        for name in names:
            assert name.split(".")[0] not in {"data", *entry_points}, name
