"""The latent classifier (neofield.sets.classify): an MLP with Mixup, input noise and an EMA."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neofield.errors import NeofieldError
from neofield.sets import classify
from neofield.sets.classify import (
    ClassifierConfig,
    ClassifierResult,
    Evaluation,
    accuracy,
    evaluate,
    mixup,
    predict,
    soft_cross_entropy,
    standardiser,
    train_classifier,
)

TINY = ClassifierConfig(hidden=32, layers=1, epochs=15, batch_size=32)


def blobs(n=200, features=10, seed=0, shift=0.0):
    """Two Gaussian classes 3 apart along every feature, with feature scales from 1e-3 to 1e2."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, features, generator=g) + 3.0 * y[:, None].float()
    scales = torch.logspace(-3, 2, features)
    return x * scales + shift, y


def parameters(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_learns_a_separable_toy_problem():
    x, y = blobs()
    xt, yt = blobs(seed=1)
    model, _ = train_classifier(x, y, 2, TINY, seed=0)
    assert accuracy(model, xt, yt) >= 0.95


def test_digits_pixels_reach_90_percent_with_a_short_config():
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    x, y = torch.tensor(digits.data, dtype=torch.float32), torch.tensor(digits.target)
    test = torch.arange(len(x)) % 5 == 0
    config = ClassifierConfig(hidden=128, epochs=8)
    result = evaluate(x[~test], y[~test], x[test], y[test], config, seeds=(0,))
    assert result.mean >= 0.9


def test_the_same_seed_gives_the_same_model_and_accuracy():
    x, y = blobs()
    a, _ = train_classifier(x, y, 2, TINY, seed=3)
    b, _ = train_classifier(x, y, 2, TINY, seed=3)
    assert torch.equal(parameters(a), parameters(b))
    assert accuracy(a, x, y) == accuracy(b, x, y)


def test_another_seed_gives_a_different_model():
    x, y = blobs()
    a, _ = train_classifier(x, y, 2, TINY, seed=0)
    b, _ = train_classifier(x, y, 2, TINY, seed=1)
    assert not torch.equal(parameters(a), parameters(b))


def test_training_leaves_the_global_rng_as_it_was():
    x, y = blobs()
    state = torch.random.get_rng_state()
    train_classifier(x, y, 2, TINY, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_standardiser_gives_each_features_training_mean_and_population_std():
    x = torch.tensor([[1.0, 10.0, 5.0], [3.0, 30.0, 5.0], [5.0, 50.0, 5.0]])
    mean, std = standardiser(x)
    assert torch.allclose(mean, torch.tensor([3.0, 30.0, 5.0]))
    assert torch.allclose(std, torch.tensor([np.std([1, 3, 5]), np.std([10, 30, 50]), 1.0]).float())


def test_a_constant_feature_keeps_std_one_and_stays_finite():
    x, y = blobs()
    x[:, 0] = 7.0
    model, _ = train_classifier(x, y, 2, TINY, seed=0)
    assert model.std[0] == 1.0
    assert torch.isfinite(model(x)).all()


def test_the_model_standardises_with_the_training_statistics_only():
    x, y = blobs()
    xt, _ = blobs(seed=1, shift=100.0)  # a test set with very different statistics
    model, raw = train_classifier(x, y, 2, TINY, seed=0)
    mean, std = standardiser(x)
    for m in (model, raw):
        assert torch.equal(m.mean, mean) and torch.equal(m.std, std)
    # a test sample's prediction does not depend on the other test samples
    alone = torch.cat([predict(model, xt[i:i + 1]) for i in range(10)])
    assert torch.equal(alone, predict(model, xt)[:10])


def test_the_ema_weights_differ_from_the_trained_ones():
    x, y = blobs()
    ema, raw = train_classifier(x, y, 2, TINY, seed=0)
    assert not torch.allclose(parameters(ema), parameters(raw))


def test_ema_decay_zero_makes_the_evaluated_weights_the_trained_ones():
    x, y = blobs()
    ema, raw = train_classifier(x, y, 2, ClassifierConfig(**{**TINY.__dict__, "ema_decay": 0.0}), seed=0)
    assert torch.equal(parameters(ema), parameters(raw))


def test_evaluate_measures_the_ema_weights(monkeypatch):
    trained, measured = [], []
    real_train, real_accuracy = classify.train_classifier, classify.accuracy

    def spy_train(*args, **kwargs):
        trained.append(real_train(*args, **kwargs))
        return trained[-1]

    def spy_accuracy(model, *args, **kwargs):
        measured.append(model)
        return real_accuracy(model, *args, **kwargs)

    monkeypatch.setattr(classify, "train_classifier", spy_train)
    monkeypatch.setattr(classify, "accuracy", spy_accuracy)
    x, y = blobs()
    evaluate(x, y, *blobs(seed=1), TINY, seeds=(0, 1))
    assert [id(m) for m in measured] == [id(ema) for ema, _ in trained for _ in (0, 1)]  # test, then train


def test_mixup_with_alpha_zero_leaves_inputs_and_targets_as_they_are():
    x, y = blobs(n=16)
    targets = F.one_hot(y, 2).float()
    mixed_x, mixed_t = mixup(x, targets, 0.0, torch.Generator().manual_seed(0), np.random.default_rng(0))
    assert torch.equal(mixed_x, x) and torch.equal(mixed_t, targets)


def test_mixup_mixes_inputs_and_targets_with_the_same_weights():
    targets = F.one_hot(torch.arange(8) % 4, 4).float()
    x = targets.clone()  # inputs equal to their targets stay equal after mixing
    mixed_x, mixed_t = mixup(x, targets, 1.0, torch.Generator().manual_seed(0), np.random.default_rng(0))
    assert torch.allclose(mixed_x, mixed_t)
    assert not torch.equal(mixed_t, targets)
    assert torch.allclose(mixed_t.sum(1), torch.ones(8))


def test_soft_cross_entropy_of_one_hot_targets_is_the_cross_entropy():
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    assert torch.allclose(soft_cross_entropy(logits, F.one_hot(labels, 5).float()), F.cross_entropy(logits, labels))


def test_on_epoch_reports_every_epoch_of_every_seed():
    calls = []
    x, y = blobs(n=40)
    config = ClassifierConfig(hidden=8, layers=1, epochs=3)
    evaluate(x, y, x, y, config, seeds=(5, 6), on_epoch=lambda *a: calls.append(a))
    assert calls == [(s, e, 3) for s in (5, 6) for e in (1, 2, 3)]


def test_evaluate_reports_each_seed_and_the_population_std():
    x, y = blobs(n=60)
    xt, yt = blobs(n=60, seed=1)
    config = ClassifierConfig(hidden=4, layers=1, epochs=1, input_noise=1.0)
    result = evaluate(x, y, xt, yt, config, seeds=(0, 1, 2))
    scores = [r.accuracy for r in result.results]
    assert [r.seed for r in result.results] == [0, 1, 2]
    assert all(r.epochs == 1 and r.seconds > 0 and 0 <= r.train_accuracy <= 1 for r in result.results)
    assert result.mean == pytest.approx(np.mean(scores)) and result.std == pytest.approx(np.std(scores))


def test_summary_reads_mean_and_std_in_percent():
    results = [ClassifierResult(s, a, 1.0, 10, 1.0) for s, a in enumerate((0.98, 0.982, 0.984))]
    assert Evaluation(results, 0.982, 0.001).summary() == "98.20 ± 0.10 % over 3 seeds"
    assert Evaluation(results[:1], 0.98, 0.0).summary() == "98.00 ± 0.00 % over 1 seed"


def test_latents_of_shape_tokens_by_dim_are_flattened():
    x, y = blobs(n=120, features=12)
    model, _ = train_classifier(x.reshape(120, 3, 4), y, 2, TINY, seed=0)
    assert model.mean.shape == (12,)
    assert accuracy(model, x.reshape(120, 3, 4), y) == accuracy(model, x, y)


def test_zero_layers_is_a_linear_classifier():
    x, y = blobs()
    model, _ = train_classifier(x, y, 2, ClassifierConfig(**{**TINY.__dict__, "layers": 0}), seed=0)
    assert [type(m) for m in model.net] == [torch.nn.Linear]
    assert accuracy(model, x, y) >= 0.95


def test_a_class_only_in_the_test_set_counts_towards_the_classes():
    x, y = blobs(n=40)
    yt = y.clone()
    yt[0] = 2
    result = evaluate(x, y, x, yt, ClassifierConfig(hidden=8, layers=1, epochs=1), seeds=(0,))
    assert result.mean < 1.0  # the sample of class 2 cannot be right


def test_a_model_refuses_inputs_with_another_feature_count():
    x, y = blobs(n=40)
    model, _ = train_classifier(x, y, 2, ClassifierConfig(hidden=8, layers=1, epochs=1), seed=0)
    with pytest.raises(NeofieldError, match="takes 10 features, not 9"):
        accuracy(model, x[:, :9], y)


def _bad_inputs():
    x, y = blobs(n=20)
    nan, inf = x.clone(), x.clone()
    nan[3, 1], inf[0, 0] = float("nan"), float("inf")
    one_class = torch.zeros(20, dtype=torch.long)
    return {
        "empty training set": ((x[:0], y[:0], x, y), {}, "empty"),
        "empty test set": ((x, y, x[:0], y[:0]), {}, "empty"),
        "training lengths differ": ((x, y[:-1], x, y), {}, "20 inputs but 19 labels"),
        "test lengths differ": ((x, y, x[:5], y), {}, "5 inputs but 20 labels"),
        "feature counts differ": ((x, y, x[:, :4], y), {}, "10 features and the test inputs 4"),
        "negative label": ((x, torch.where(y == 1, -1, 0), x, y), {}, "found -1"),
        "training label out of range": ((x, y * 5, x, y), {"num_classes": 2}, "training labels must lie in [0, 1]; found 5"),
        "test label out of range": ((x, y, x, y + 1), {"num_classes": 2}, "found 2"),
        "one class in training": ((x, one_class, x, one_class), {"num_classes": 2}, "fewer than 2 classes"),
        "fewer than 2 classes": ((x, one_class, x, one_class), {}, "at least 2 classes"),
        "nan feature": ((nan, y, x, y), {}, "non-finite"),
        "inf test feature": ((x, y, inf, y), {}, "non-finite"),
        "float labels": ((x, y.float(), x, y), {}, "must be integers"),
        "one-dimensional inputs": ((x[:, 0], y, x, y), {}, "(signals, features)"),
        "no seeds": ((x, y, x, y), {"seeds": ()}, "at least one seed"),
        "negative seed": ((x, y, x, y), {"seeds": (0, -1)}, "not -1"),
        "float64 beyond float32": ((x.double() * 1e300, y, x, y), {}, "beyond float32's range"),
    }


@pytest.mark.parametrize("case", list(_bad_inputs()))
def test_bad_input_is_refused_in_one_line(case):
    args, kwargs, message = _bad_inputs()[case]
    with pytest.raises(NeofieldError, match=re.escape(message)) as error:
        evaluate(*args, config=TINY, **kwargs)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("field, value", [
    ("hidden", 0), ("layers", -1), ("epochs", 0), ("batch_size", 0), ("epochs", 2.5), ("lr", 0.0),
    ("weight_decay", -0.1), ("mixup_alpha", -1.0), ("input_noise", float("nan")), ("ema_decay", 1.0),
    ("dropout", 1.0), ("hidden", True),
])
def test_a_config_out_of_range_is_refused_in_one_line(field, value):
    with pytest.raises(NeofieldError, match=field) as error:
        ClassifierConfig(**{field: value})
    assert "\n" not in str(error.value)
