"""Tests for btcore.tasks.generation: the DRAW-style VAE with dense, TT or BT image maps."""

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

from btcore.layers import BTLinear, TTLinear
from btcore.tasks import generation as gen
from btcore.tasks.digits import digits_split
from btcore.tasks.generation import DrawModel, DrawOutput, GenerationConfig, GenerationPreview, nelbo, preview, train_epochs
from btcore.tasks.images import tile

KINDS = ["dense", "tt", "bt"]


def small(kind="bt", **kw):
    """A CPU-quick config on 28 x 28 digits: hidden 16 = 2x2x2x2, 3 steps, latent 4."""
    base = dict(kind=kind, steps=3, latent=4, hidden_size=16, hidden_modes=(2, 2, 2, 2), rank=2, blocks=2,
                tt_ranks=2)
    return GenerationConfig(**(base | kw))


def build(cfg, seed=0):
    return DrawModel(cfg, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def data():
    return digits_split()


# -- configuration --------------------------------------------------------------------------------

def test_default_config_and_exact_map_counts():
    cfg = GenerationConfig()
    assert (cfg.kind, cfg.image_modes, cfg.steps, cfg.hidden_size) == ("bt", (4, 7, 4, 7), 8, 128)
    assert cfg.read_modes == (8, 7, 4, 7) and cfg.map_modes("read") == ((8, 7, 4, 7), (16, 4, 4, 2))
    assert cfg.map_modes("write") == ((4, 4, 4, 2), (4, 7, 4, 7))
    # BT R=4, N=2: 2 * 4 * (8*16 + 7*4 + 4*4 + 7*2) factor entries + 2 * 4^4 core entries
    assert cfg.image_map_params() == {"read": 2 * 4 * 186 + 512, "write": 2 * 4 * (16 + 28 + 16 + 14) + 512}
    tt = dataclasses.replace(cfg, kind="tt")
    assert tt.image_map_params() == {"read": 8 * 16 * 4 + 4 * 7 * 4 * 4 + 4 * 4 * 4 * 4 + 4 * 7 * 2,
                                     "write": 4 * 4 * 4 + 4 * 4 * 7 * 4 + 4 * 4 * 4 * 4 + 4 * 2 * 7}
    assert dataclasses.replace(cfg, kind="dense").image_map_params() == {"read": 1568 * 512, "write": 128 * 784}


@pytest.mark.parametrize("kind", KINDS)
def test_built_model_has_the_configured_parameters(kind):
    cfg = small(kind)
    model = build(cfg)
    assert model.num_params == cfg.num_params()
    read = model.read_map
    assert (read.in_features, read.out_features) == (1568, 64)
    weights = read.spec.params if kind != "dense" else read.weight.numel()
    assert weights == cfg.image_map_params()["read"]


def test_config_json_round_trip():
    cfg = small("tt", tt_ranks=[2, 3, 2])
    back = GenerationConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.tt_ranks == (2, 3, 2)
    with pytest.raises(ValueError, match=r"unknown GenerationConfig field\(s\) \['colour'\]"):
        GenerationConfig.from_dict(cfg.to_dict() | {"colour": 1})


@pytest.mark.parametrize("kw, match", [
    ({"steps": 0}, r"steps \(the number of DRAW steps T, e.g. 8\) must be a positive integer, got 0"),
    ({"latent": 0}, r"latent \(the size of each step's latent z, e.g. 16\) must be a positive integer, got 0"),
    ({"hidden_size": 128, "hidden_modes": (4, 4, 4, 4)},
     r"hidden_modes 4x4x4x4 multiply to 256, not hidden_size = 128; .*for example"),
    ({"image_modes": (4, 7, 4, 8)}, r"image_modes 4x7x4x8 multiply to 896, but a 28 x 28 image has 784 pixels"),
    ({"image_size": 8}, r"a 8 x 8 image has 64 pixels; choose modes whose product is 64"),
    ({"kind": "xx"}, r"kind must be one of 'dense', 'tt', 'bt', 'tr', got 'xx'"),
    ({"kind": "bt", "hidden_size": 16, "hidden_modes": (4, 4)}, r"hidden_modes has 2 modes but image_modes has 4"),
    ({"kind": "bt", "rank": 100}, r"rank/blocks for the BT read map 8x7x4x7 -> 8x2x2x2"),
    ({"kind": "tt", "tt_ranks": 999}, r"tt_ranks for the TT read map"),
    ({"blocks": 0}, r"blocks must be at least 1"),
])
def test_bad_config_messages(kw, match):
    with pytest.raises(ValueError, match=match):
        small(**kw)


def test_dense_accepts_any_hidden_modes_order():
    cfg = small("dense", hidden_modes=(16,))
    assert build(cfg).num_params == cfg.num_params()


def test_bad_inputs_to_the_model():
    model = build(small())
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 784\)"):
        model.loss(torch.rand(2, 700))
    with pytest.raises(ValueError, match="floating-point"):
        model.loss(torch.ones(2, 784, dtype=torch.int64))
    with pytest.raises(ValueError, match="empty batch"):
        model.loss(torch.rand(0, 784))
    with pytest.raises(ValueError, match="n must be at least 1"):
        model.sample(0, seed=0)
    with pytest.raises(ValueError, match="not both"):
        model.sample(2, torch.Generator(), seed=1)
    with pytest.raises(ValueError, match="val has 3 images; the preview reconstructs 8"):
        preview(model, torch.rand(3, 784))
    assert model.loss(torch.rand(2, 28, 28))[0].shape == ()  # (B, side, side) is flattened


# -- the model's math -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_kl_is_non_negative_and_loss_is_bce_plus_kl(kind, data):
    model = build(small(kind))
    x = data.val[:16]
    with torch.no_grad():
        out = model(x, torch.Generator().manual_seed(3))
    assert isinstance(out, DrawOutput) and out.logits.shape == (16, 784) and out.kl.shape == (16, 3)
    assert bool((out.kl >= 0).all())
    loss, parts = model.loss(x, torch.Generator().manual_seed(3))
    bce = -(x * torch.log(torch.sigmoid(out.logits)) + (1 - x) * torch.log(1 - torch.sigmoid(out.logits))).sum(1)
    assert float(loss.detach()) == pytest.approx(float((bce + out.kl.sum(1)).mean()), rel=1e-5)
    assert parts["bce"] == pytest.approx(float(bce.mean()), rel=1e-5)
    assert parts["kl"] == pytest.approx(float(out.kl.sum(1).mean()), rel=1e-5)


def test_kl_matches_the_closed_form_of_torch_distributions():
    model = build(small("dense")).double()
    mu = torch.tensor([0.5, -1.0, 0.0, 2.0], dtype=torch.float64)
    log_sigma = torch.tensor([0.0, -0.7, 0.3, 1e-9], dtype=torch.float64)
    with torch.no_grad():  # a constant posterior: the latent head ignores its input
        model.latent_head.weight.zero_()
        model.latent_head.bias.copy_(torch.cat([mu, log_sigma]))
    kl = model(torch.rand(2, 784, dtype=torch.float64), torch.Generator().manual_seed(0)).kl
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mu, log_sigma.exp()),
                                            torch.distributions.Normal(0.0, 1.0)).sum()
    torch.testing.assert_close(kl, ref.expand(2, 3), rtol=1e-12, atol=1e-14)
    with torch.no_grad():
        model.latent_head.bias.zero_()  # q = N(0, I) exactly: KL is exactly zero
    assert float(model(torch.rand(2, 784, dtype=torch.float64)).kl.detach().abs().max()) == 0.0


def test_canvases_accumulate_to_the_final_logits(data):
    model = build(small("bt"))
    out = model(data.val[:4], torch.Generator().manual_seed(0), keep_canvases=True)
    assert out.canvases.shape == (3, 4, 784)
    torch.testing.assert_close(out.canvases[-1], out.logits, rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["tt", "bt"])
def test_full_rank_factorized_maps_reproduce_the_dense_model(kind, data):
    dense = build(small("dense")).double()
    cfg = dense.config
    conv = copy.deepcopy(dense)
    layer = BTLinear if kind == "bt" else TTLinear
    read_in, read_out = cfg.map_modes("read")
    write_in, write_out = cfg.map_modes("write")
    conv.encoder.input_map = layer.from_linear(dense.encoder.input_map, read_in, read_out)  # full rank: exact
    conv.write = layer.from_linear(dense.write, write_in, write_out)
    assert isinstance(conv.read_map, layer)
    x = data.val[:6].double()
    a = dense(x, torch.Generator().manual_seed(11), keep_canvases=True)
    b = conv(x, torch.Generator().manual_seed(11), keep_canvases=True)
    torch.testing.assert_close(b.canvases, a.canvases, rtol=0, atol=1e-8)
    torch.testing.assert_close(b.kl, a.kl, rtol=0, atol=1e-8)
    torch.testing.assert_close(conv.sample(5, seed=2), dense.sample(5, seed=2), rtol=0, atol=1e-8)


# -- sampling ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_samples_shape_range_and_seed_determinism(kind):
    model = build(small(kind))
    s = model.sample(7, seed=4)
    assert s.shape == (7, 784) and float(s.min()) >= 0.0 and float(s.max()) <= 1.0
    assert torch.equal(s, model.sample(7, seed=4))
    assert torch.equal(s, model.sample(7, torch.Generator().manual_seed(4)))
    assert not torch.equal(s, model.sample(7, seed=5))
    steps = model.canvas_steps(seed=4)
    assert steps.shape == (3, 784)
    torch.testing.assert_close(steps[-1], model.sample(1, seed=4)[0])
    torch.testing.assert_close(model.sample(36, seed=4)[:7], s)  # an image's noise does not depend on n


def test_same_seed_same_weights():
    a, b = build(small("bt"), seed=3), build(small("bt"), seed=3)
    for (n, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), n
    assert not torch.equal(a.write.core, build(small("bt"), seed=4).write.core)


def test_reconstruct_and_nelbo_are_deterministic(data):
    model = build(small("tt"))
    model.train()
    r = model.reconstruct(data.val[:5], seed=0)
    assert r.shape == (5, 784) and torch.equal(r, model.reconstruct(data.val[:5], seed=0))
    v = nelbo(model, data.val, batch_size=100)
    assert v == nelbo(model, data.val, batch_size=100) and v > 0
    assert model.training  # restored


# -- training -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_validation_nelbo_falls_in_a_short_seeded_run(kind, data):
    model = build(small(kind))
    before = nelbo(model, data.val)
    hist = train_epochs(model, data.train[:400], data.val, epochs=2, batch=50, lr=1e-2, seed=0)
    assert [h["epoch"] for h in hist] == [1, 2]
    assert hist[-1]["val_nelbo"] < before - 50, (before, hist)
    assert hist[-1]["val_nelbo"] == nelbo(model, data.val)


def test_training_is_reproducible(data):
    runs = []
    for _ in range(2):
        model = build(small("bt"))
        hist = train_epochs(model, data.train[:100], data.val[:50], epochs=1, batch=25, seed=7)
        runs.append(([(h["train_loss"], h["val_nelbo"]) for h in hist], model.write.core.detach().clone()))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])


def test_train_epochs_bad_arguments(data):
    model = build(small())
    with pytest.raises(ValueError, match="lr must be a positive number"):
        train_epochs(model, data.train[:10], data.val[:10], lr=0)
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        train_epochs(model, data.train[:10], data.val[:10], epochs=0)


# -- previews -------------------------------------------------------------------------------------

def test_preview_grids(data):
    model = build(small("bt"))
    p = preview(model, data.val)
    assert isinstance(p, GenerationPreview)
    assert p.samples.shape == (168, 168) and p.reconstructions.shape == (56, 224)
    assert p.originals.shape == p.reconstructed.shape == (8, 28, 28) and p.canvas.shape == (3, 28, 28)
    for a in (p.samples, p.reconstructions, p.canvas):
        assert a.min() >= 0 and a.max() <= 1
    idx = np.linspace(0, 296, 8).round().astype(int)
    np.testing.assert_array_equal(p.originals, data.val[idx].double().numpy().reshape(8, 28, 28))
    np.testing.assert_array_equal(p.samples, tile(model.sample(36, seed=0), 6, 6))
    np.testing.assert_array_equal(p.reconstructions[28:, :28], p.reconstructed[0])
    np.testing.assert_allclose(p.canvas[-1], p.samples[:28, :28], atol=1e-6)  # batch of 1 vs 36: float32 rounding
    again = preview(model, data.val)
    np.testing.assert_array_equal(again.samples, p.samples)


def test_maps_formed_once_per_pass_only_where_that_costs_fewer_multiply_adds():
    model = build(GenerationConfig(kind="bt")).double()
    rows = (100, model.config.steps)
    assert gen._per_pass(model.read_map, *rows) is model.read_map  # BT read: 246k vs 803k per row
    formed = gen._per_pass(model.write, *rows)  # BT write: 110k vs 100k + 1.2k to form W
    assert formed is not model.write
    v = torch.randn(5, 128, dtype=torch.float64)
    torch.testing.assert_close(formed(v), model.write(v), rtol=0, atol=1e-12)
    tt = build(GenerationConfig(kind="tt"))
    assert gen._per_pass(tt.write, *rows) is tt.write and gen._per_pass(tt.read_map, *rows) is tt.read_map
    assert gen._per_pass(model.write, 1, 1) is model.write  # one row does not pay for forming W
    dense = build(small("dense"))
    assert gen._per_pass(dense.write, *rows) is dense.write


def test_tr_maps_count_their_ring_cores():
    import btcore

    cfg = small("tr", tr_ranks=3)
    for name in ("read", "write"):
        i, o = cfg.map_modes(name)
        assert cfg.image_map_params()[name] == btcore.tr_params(i, o, 3)
    assert build(cfg).write.spec == cfg.spec("write") and cfg.describe() == "TR-DRAW (ranks 3)"
    assert GenerationConfig.from_dict(cfg.to_dict()) == cfg
