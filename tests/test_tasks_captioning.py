"""Captioning: vocabulary, configuration, the dense/TT/BT captioner, BLEU and the other metrics, previews."""

import json

import numpy as np
import pytest
import torch

from btcore.layers import BTLinear, TTLinear
from btcore.tasks.captioning import (BOS, EOS, PAD, CaptionConfig, Captioner, CaptionSet, Vocabulary, corpus_bleu,
                                     evaluate, normalize_caption, positional_unigram_caption, preview, train_epochs,
                                     word_flags)
from btcore.tasks.scenes import SceneConfig, caption_config, make_scenes

TINY_SCENES = SceneConfig(train=600, val=100, max_objects=1, colours=3, shapes=2, noise=0.02, seed=1)
TINY = dict(hidden_modes=(2, 4, 2, 2), embed=16, rank=2, blocks=2, tt_ranks=2)


def _model(kind, seed=0, scene=TINY_SCENES, **kw):
    return Captioner(caption_config(kind, scene, **(TINY | kw)), generator=torch.Generator().manual_seed(seed))


# -- vocabulary ---------------------------------------------------------------------------------

def test_vocabulary_round_trip_and_ids():
    v = Vocabulary(("a", "red", "circle"))
    assert len(v) == 6 and v.tokens[:3] == ("<pad>", "<bos>", "<eos>") and (PAD, BOS, EOS) == (0, 1, 2)
    assert v.encode("a red circle") == [BOS, 3, 4, 5, EOS]
    assert v.decode([BOS, 3, 4, EOS, 5, PAD]) == "a red"
    batch = v.encode_batch(["a circle", "a red circle"])
    assert batch.tolist() == [[1, 3, 5, 2, 0], [1, 3, 4, 5, 2]]
    assert Vocabulary.from_captions(["b a", "a c", "a b"]).words == ("a", "b", "c")  # by count, ties alphabetical


@pytest.mark.parametrize("words, match", [
    ((), "the vocabulary has 0 words"),
    (("a", "a"), r"words\[1\] = 'a' appears twice"),
    (("a b",), "is not a word"),
    (("<eos>",), "is not a word"),
    ("abc", "words must be a list of strings"),
])
def test_vocabulary_refuses_bad_words(words, match):
    with pytest.raises(ValueError, match=match):
        Vocabulary(words)


def test_unknown_word_named():
    with pytest.raises(ValueError, match="unknown word 'dog' in caption 'a dog'"):
        Vocabulary(("a", "cat")).encode("a dog")
    with pytest.raises(ValueError, match="unknown word '<pad>'"):
        Vocabulary(("a",)).encode("a <pad>")


def test_normalize_caption():
    assert normalize_caption("  A Man, riding a HORSE.\n") == "a man riding a horse"
    assert normalize_caption("it's 2 dogs!") == "it's 2 dogs"


# -- configuration ------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, match", [
    (dict(words=()), "the vocabulary has 0 words"),
    (dict(image_modes=(8, 8, 8, 8)), "image_modes 8x8x8x8 multiply to 4,096 but an image of 3x32x32 has 3,072"),
    (dict(image_shape=(3, 32)), r"image_shape must be \(channels, height, width\)"),
    (dict(kind="xx"), "kind must be one of"),
    (dict(hidden_modes=(8, 16)), "hidden_modes has 2 modes but image_modes has 4"),
    (dict(rank=0), "rank must be at least 1"),
    (dict(tt_ranks=(2, 2)), "tt_ranks"),
    (dict(embed=0), "embed must be at least 1"),
])
def test_config_messages(kw, match):
    base = dict(words=("a", "b"), kind="tt" if "tt_ranks" in kw else "bt")
    with pytest.raises(ValueError, match=match):
        CaptionConfig(**(base | kw))


def test_config_round_trip_and_exact_counts():
    cfg = caption_config("bt")
    back = CaptionConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    with pytest.raises(ValueError, match="unknown CaptionConfig field"):
        CaptionConfig.from_dict(cfg.to_dict() | {"hidden": 3})
    # image map 3,072 -> 4 x 128: modes 8x8x8x6 -> 16x4x4x2 (I_k J_k = 128, 32, 32, 12)
    counts = {"dense": 3072 * 512, "tt": 1 * 128 * 4 + 4 * 32 * 4 + 4 * 32 * 4 + 4 * 12 * 1,
              "bt": 2 * ((128 + 32 + 32 + 12) * 4 + 4**4)}
    for kind, want in counts.items():
        cfg = caption_config(kind)
        model = Captioner(cfg)
        assert cfg.image_map_params() == model.image_map_params() == want
        assert cfg.num_params() == model.num_params == sum(p.numel() for p in model.parameters())
    assert caption_config("dense").num_params() - caption_config("bt").num_params() == counts["dense"] - counts["bt"]


# -- BLEU and baselines -------------------------------------------------------------------------

def test_bleu_of_true_captions_is_100_and_constant_low():
    _, val = make_scenes(SceneConfig(train=10, val=300))
    truth = [refs[0] for refs in val.captions]
    assert corpus_bleu(truth, val.captions) == pytest.approx(100.0)
    assert corpus_bleu(["a"] * len(val), val.captions) < 1.0
    const = positional_unigram_caption(truth)
    assert 1.0 < corpus_bleu([const] * len(val), val.captions) < 30.0
    # several references: matching any one of them counts
    assert corpus_bleu(["a red circle on the left"], [("a big dog", "a red circle on the left")]) == pytest.approx(100)
    with pytest.raises(ValueError, match="2 hypotheses but 1 reference lists"):
        corpus_bleu(["a", "b"], [("a",)])


def test_positional_unigram_caption():
    caps = ["a red circle", "a blue circle", "a blue square", "a green square here"]
    assert positional_unigram_caption(caps) == "a blue circle"  # length 3 most common; ties alphabetical


def test_word_flags():
    assert word_flags("a red square on the left", "a red circle on the left") == (True, True, False, True, True, True)
    assert word_flags("a red", "a") == (True, False)


# -- the model ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["tt", "bt"])
def test_full_rank_factorized_image_map_equals_dense(kind):
    """The same weights as a full-rank TT/BT map give the dense captioner's logits and captions (float64)."""
    scene = SceneConfig(train=10, val=12)
    dense = _model("dense", scene=scene, hidden_modes=(2, 2, 2, 2)).double()
    other = _model(kind, scene=scene, hidden_modes=(2, 2, 2, 2)).double()
    lin = dense.image_map
    cls = TTLinear if kind == "tt" else BTLinear
    other.cell.input_map = cls.from_dense(lin.weight.detach().T, (8, 8, 8, 6), (8, 2, 2, 2), None,
                                          bias=lin.bias.detach())
    rest = {k: v for k, v in dense.state_dict().items() if not k.startswith("cell.input_map")}
    other.load_state_dict(rest | {k: v for k, v in other.state_dict().items() if k.startswith("cell.input_map")})
    _, val = make_scenes(scene)
    images = val.images.double()
    tokens = dense.vocabulary.encode_batch([c[0] for c in val.captions])
    torch.testing.assert_close(other(images, tokens), dense(images, tokens), rtol=1e-10, atol=1e-10)
    assert torch.equal(other.generate(images), dense.generate(images))


def test_teacher_forcing_loss_ignores_padding():
    model = _model("bt")
    _, val = make_scenes(TINY_SCENES)
    tokens = model.vocabulary.encode_batch([c[0] for c in val.captions[:4]])
    padded = torch.cat([tokens, torch.full((4, 3), PAD)], 1)
    torch.testing.assert_close(model.loss(val.images[:4], padded), model.loss(val.images[:4], tokens))
    logits = model(val.images[:4], tokens)
    want = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], ignore_index=PAD)
    torch.testing.assert_close(model.loss(val.images[:4], tokens), want)


def test_greedy_decoding_is_deterministic_and_stops_at_eos():
    model = _model("tt")
    _, val = make_scenes(TINY_SCENES)
    a, b = model.generate(val.images), model.generate(val.images)
    assert torch.equal(a, b) and a.shape[1] <= model.config.max_len
    for row in a.tolist():  # nothing but padding after the first <eos>
        if EOS in row:
            assert all(t == PAD for t in row[row.index(EOS) + 1:])
        assert BOS not in row


@pytest.mark.parametrize("kind", ["dense", "tt", "bt"])
def test_short_run_beats_the_unigram_baseline(kind):
    torch.set_num_threads(1)
    train, val = make_scenes(TINY_SCENES)
    base = positional_unigram_caption([c[0] for c in train.captions])
    base_bleu = corpus_bleu([base] * len(val), val.captions)
    history = train_epochs(_model(kind), train, val, epochs=5, batch=32, lr=1e-2, seed=0)
    last = history[-1]
    assert set(last) >= {"epoch", "train_loss", "examples", "val_loss", "val_bleu", "val_exact", "val_token_acc"}
    assert last["examples"] == 5 * len(train) and history[0]["val_loss"] > last["val_loss"]
    assert last["val_bleu"] > base_bleu + 15, (last["val_bleu"], base_bleu)
    assert last["val_exact"] > 0.2 and last["val_token_acc"] > 0.7


def test_same_seed_same_training_and_captions():
    train, val = make_scenes(TINY_SCENES)
    runs = []
    for _ in range(2):
        model = _model("bt", seed=3)
        hist = train_epochs(model, train, val, epochs=1, batch=64, lr=1e-2, seed=4)
        runs.append(([{k: v for k, v in h.items() if k != "seconds"} for h in hist], model.caption(val.images)))
    assert runs[0] == runs[1]


def test_evaluate_matches_its_definitions():
    model = _model("bt")
    _, val = make_scenes(TINY_SCENES)
    m = evaluate(model, val, batch=7)
    hyps = model.caption(val.images)
    assert m["val_bleu"] == pytest.approx(corpus_bleu(hyps, val.captions))
    assert m["val_exact"] == np.mean([h == r[0] for h, r in zip(hyps, val.captions)])
    tokens = model.vocabulary.encode_batch([r[0] for r in val.captions])
    with torch.no_grad():
        assert m["val_loss"] == pytest.approx(float(model.loss(val.images, tokens)), rel=1e-5)
    assert 0 <= m["val_token_acc"] <= 1


def test_evaluate_with_several_references():
    """A caption equal to any reference is exact; adding the model's own caption as a reference raises BLEU."""
    model = _model("bt")
    train, val = make_scenes(TINY_SCENES)
    train_epochs(model, train, val, epochs=1, batch=32, lr=1e-2)  # so that every caption has words
    hyps = model.caption(val.images)
    refs = tuple((r[0], h) if k % 2 == 0 else r for k, (r, h) in enumerate(zip(val.captions, hyps)))
    multi = CaptionSet(val.images, refs)
    assert multi.pairs()[0].tolist() == [k for k in range(len(val)) for _ in range(2 if k % 2 == 0 else 1)]
    one, two = evaluate(model, val), evaluate(model, multi)
    assert two["val_exact"] == np.mean([h in r for h, r in zip(hyps, refs)]) >= 0.5
    assert two["val_bleu"] > one["val_bleu"] + 20


def test_preview_fixed_images_and_flags():
    model = _model("tt")
    _, val = make_scenes(TINY_SCENES)
    shots = preview(model, val)
    assert [s.index for s in shots] == [0, 20, 40, 59, 79, 99]
    for s in shots:
        assert s.image.shape == (32, 32, 3) and np.array_equal(s.image, val.images[s.index].permute(1, 2, 0).numpy())
        assert s.truth == val.captions[s.index][0] and s.correct == word_flags(s.caption, s.truth)
    assert [s.caption for s in shots] == [s.caption for s in preview(model, val)]


def test_bad_inputs():
    model = _model("bt")
    with pytest.raises(ValueError, match=r"images must have shape \(batch, 3, 32, 32\) or \(batch, 3072\)"):
        model.generate(torch.zeros(2, 3, 16, 16))
    with pytest.raises(ValueError, match="tokens must have shape"):
        model(torch.zeros(2, 3, 32, 32), torch.zeros(2, 1, dtype=torch.int64))
    with pytest.raises(ValueError, match="config must be a CaptionConfig"):
        Captioner("bt")
    bad = CaptionSet(torch.zeros(1, 3, 32, 32), (("a purple circle on the left",),))
    with pytest.raises(ValueError, match="unknown word 'purple'"):
        train_epochs(model, bad, bad, epochs=1)
    with pytest.raises(ValueError, match="2 images but 1 caption lists"):
        CaptionSet(torch.zeros(2, 3, 32, 32), (("a",),))
    with pytest.raises(ValueError, match="image 0 needs at least one non-empty caption"):
        CaptionSet(torch.zeros(1, 3, 32, 32), (("",),))


def test_tr_image_map_counts_its_ring_cores():
    import btcore
    from btcore.tasks.scenes import caption_config

    cfg = caption_config("tr", tr_ranks=3)
    assert cfg.image_map_params() == btcore.tr_params(cfg.image_modes, cfg.out_modes, 3)
    assert cfg.describe() == "TR-LSTM captioner (ranks 3)"
    assert type(cfg).from_dict(cfg.to_dict()) == cfg
