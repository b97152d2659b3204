from __future__ import annotations

import math

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from sweeps.search_space import YamlFileError, parse_config_yaml, parse_sweep_yaml, render_config

DEMO_SWEEP = """\
parameters:
  arch:       {values: [small, wide]}
  lr:         {distribution: log_uniform, min: 0.0001, max: 0.1}
  batch_size: {distribution: q_uniform, min: 8, max: 64, q: 8}
  dropout:    {distribution: uniform, min: 0.0, max: 0.5}
  epochs:     {value: 30}
"""


def test_every_form_maps_onto_optuna():
    space = parse_sweep_yaml(DEMO_SWEEP)
    assert space.distributions == {
        "arch": CategoricalDistribution(["small", "wide"]),
        "lr": FloatDistribution(0.0001, 0.1, log=True),
        "batch_size": IntDistribution(8, 64, step=8),
        "dropout": FloatDistribution(0.0, 0.5),
    }
    assert space.fixed == {"epochs": 30}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("{distribution: uniform, min: 1, max: 5}", IntDistribution(1, 5)),
        ("{distribution: uniform, min: 1.0, max: 5}", FloatDistribution(1.0, 5.0)),
        ("{distribution: int_uniform, min: 2, max: 9}", IntDistribution(2, 9)),
        (
            "{distribution: log_uniform_values, min: 1e-5, max: 1e-1}",
            FloatDistribution(1e-5, 0.1, log=True),
        ),
        ("{distribution: log_uniform, min: 16, max: 256}", IntDistribution(16, 256, log=True)),
        (
            "{distribution: q_uniform, min: 0.0, max: 1.0, q: 0.25}",
            FloatDistribution(0.0, 1.0, step=0.25),
        ),
        ("{values: [1, 2.5, true]}", CategoricalDistribution([1, 2.5, True])),
    ],
)
def test_integer_unless_a_decimal_point_and_aliases(spec, expected):
    assert parse_sweep_yaml(f"parameters:\n  p: {spec}\n").distributions["p"] == expected


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (
            "parameters:\n  lr: {distribution: log_uniform, min: 0.1, max: 0.001}\n",
            2,
            "'min' (0.1) must be less than 'max'",
        ),
        (
            "parameters:\n  a: {values: [1]}\n  lr: {distribution: log_uniform, min: 0, max: 1.0}\n",
            3,
            "parameter 'lr': 'min' must be > 0",
        ),
        (
            "parameters:\n  lr: {distribution: gaussian, min: 0, max: 1}\n",
            2,
            "unknown distribution 'gaussian'",
        ),
        ("parameters:\n  lr: {distribution: uniform, max: 1.0}\n", 2, "'min' is required"),
        ("parameters:\n  lr: {distribution: uniform, min: a, max: 1.0}\n", 2, "must be numbers"),
        (
            "parameters:\n  bs: {distribution: q_uniform, min: 8, max: 64}\n",
            2,
            "'q' must be a positive number",
        ),
        (
            "parameters:\n  bs: {distribution: q_uniform, min: 8, max: 64, q: 128}\n",
            2,
            "larger than max - min",
        ),
        ("parameters:\n  arch: {values: []}\n", 2, "non-empty list"),
        ("parameters:\n  arch: {values: [a, a]}\n", 2, "duplicates"),
        ("parameters:\n  arch: [small, wide]\n", 2, "must be a mapping"),
        (
            "parameters:\n  lr: {min: 0.1, max: 1.0}\n",
            2,
            "needs 'values', 'value' or 'distribution'",
        ),
        (
            "parameters:\n  lr: {distribution: uniform, min: 0.0, max: 1.0, stepp: 2}\n",
            2,
            "unknown key(s) stepp",
        ),
        ("parameters:\n  a: {values: [1, 2]}\n  a: {values: [3]}\n", 3, "defined twice"),
        ("parameters:\n  a: {value: 1}\n", 1, "no parameter is searched"),
        # A key with nothing after it is YAML's null, not a crash.
        ("parameters:\n  wd:\n  lr: {values: [1]}\n", 2, "parameter 'wd': must be a mapping"),
        (
            "parameters:\n  opt: {value: {name: adam}}\n  lr: {values: [1]}\n",
            2,
            "parameter 'opt': 'value' must be a number, string, bool or list",
        ),
        (
            "parameters:\n  a: {values: [1]}\nparameters:\n  b: {values: [2]}\n",
            3,
            "section 'parameters' is defined twice",
        ),
        (
            "parameters:\n  lr:\n    distribution: uniform\n    min: 0.0\n    max: 1.0\n"
            "    max: 2.0\n",
            6,
            "parameter 'lr': key 'max' is defined twice",
        ),
        (
            "parameters:\n  bs: {distribution: q_uniform, min: 8, max: 60, q: 8}\n",
            2,
            "max - min (52) must be a multiple of 'q' (8)",
        ),
        ("params:\n  a: {values: [1]}\n", 1, "unknown section 'params': only 'parameters'"),
        ("{}\n", 1, "needs a 'parameters' mapping"),
        # W&B's sections would be ignored: TPE, not a grid, whatever 'method' says.
        (
            "parameters:\n  a: {values: [1, 2]}\nmethod: grid\n",
            3,
            "unknown section 'method': only 'parameters' is read (sweeps use Optuna's TPE",
        ),
        (
            "parameters:\n  lr: {distribution: uniform, min: 0.0, max: 1.0\n",
            3,
            "expected ',' or '}'",
        ),
    ],
)
def test_errors_name_line_and_parameter(text, line, fragment):
    with pytest.raises(YamlFileError) as excinfo:
        parse_sweep_yaml(text)
    assert excinfo.value.line == line
    assert fragment in str(excinfo.value)
    assert str(excinfo.value).startswith(f"sweep.yaml line {line}:")


def test_a_parameter_missing_from_config_yaml_is_refused_with_its_line():
    space = parse_sweep_yaml(
        "parameters:\n  lr: {distribution: log_uniform, min: 0.001, max: 0.1}\n"
        "  lrr: {distribution: uniform, min: 0.0, max: 0.1}\n  seed: {value: 3}\n"
    )
    space.check_against({"lr": 0.01, "lrr": 0.0, "seed": 1, "epochs": 5})  # all there
    with pytest.raises(YamlFileError) as excinfo:
        space.check_against({"lr": 0.01, "seed": 1, "epochs": 5})
    assert str(excinfo.value).startswith(
        "sweep.yaml line 3: parameter 'lrr' is not in config.yaml; did you mean 'lr'?"
    )
    # A fixed value is a parameter too; no suggestion when nothing is close.
    with pytest.raises(YamlFileError, match=r"line 4: parameter 'seed' is not in config\.yaml \("):
        space.check_against({"lr": 0.01, "lrr": 0.0})


def test_a_stored_sweep_with_another_section_still_parses():
    """Sweeps started before sections were refused must still resume and draw."""
    text = "method: bayes\nparameters:\n  a: {values: [1, 2]}\n"
    with pytest.raises(YamlFileError, match="unknown section 'method'"):
        parse_sweep_yaml(text)
    assert list(parse_sweep_yaml(text, strict=False).distributions) == ["a"]


def test_empty_sweep_file_is_refused():
    with pytest.raises(YamlFileError, match=r"sweep\.yaml: is empty"):
        parse_sweep_yaml("")


def test_sampled_values_respect_the_space():
    space = parse_sweep_yaml(DEMO_SWEEP)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask(space.distributions)
        config = space.trial_config({"lr": 0.01, "epochs": 5, "seed": 1}, trial.params)
        assert config["arch"] in ("small", "wide")
        assert 1e-4 <= config["lr"] <= 0.1
        assert config["batch_size"] % 8 == 0 and 8 <= config["batch_size"] <= 64
        assert config["epochs"] == 30 and config["seed"] == 1
        study.tell(trial, config["lr"])
    assert math.isfinite(study.best_value)


def test_config_yaml_flat_mapping():
    assert parse_config_yaml("lr: 0.01\narch: small\nsizes: [1, 2]\n") == {
        "lr": 0.01,
        "arch": "small",
        "sizes": [1, 2],
    }
    assert parse_config_yaml("") == {}
    assert parse_config_yaml("lr: 0.01\nwd:\n") == {"lr": 0.01, "wd": None}


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("lr: 0.01\nlr: 0.02\n", 2, "'lr' is defined twice"),
        ("lr: 0.01\nopt:\n  name: adam\n", 3, "'opt' must be a number, string, bool or list"),
        ("- 1\n- 2\n", 1, "must be a mapping"),
        ("lr: [0.1\n", 2, "expected ',' or ']'"),
        ("lr: 0.01\n  bad indent: 1\n", 2, "mapping values are not allowed here"),
    ],
)
def test_config_errors_name_the_line(text, line, fragment):
    with pytest.raises(YamlFileError) as excinfo:
        parse_config_yaml(text)
    assert excinfo.value.line == line
    assert fragment in str(excinfo.value)


COMMENTED_CONFIG = """\
# Hyperparameters of train.py
lr: 1.0e-3       # learning rate
optimizer: adam  # sgd | adam
wd:
layers: [64, 64]
"""


def test_render_config_keeps_comments_and_rewrites_changed_values_in_place():
    config = {"lr": 0.02, "optimizer": "yes", "wd": 0.1, "layers": [64, 64], "seed": 4}
    text = render_config(config, COMMENTED_CONFIG)
    assert yaml.safe_load(text) == config
    assert text == (
        "# Hyperparameters of train.py\n"
        "lr: 0.02       # learning rate\n"
        "optimizer: 'yes'  # sgd | adam\n"  # quoted, or it would read back as True
        "wd: 0.1\n"
        "layers: [64, 64]\n"  # unchanged: kept as written
        "seed: 4\n"  # new keys at the end
    )


@pytest.mark.parametrize(
    "template", [None, "", "lr: [0.1\n", "- a list\n", "layers: [1, 2]\nlr: 1\n"]
)
def test_render_config_without_a_usable_template_is_plain_yaml(template):
    config = {"lr": 0.5, "layers": [1, 3]}
    text = render_config(config, template)
    assert yaml.safe_load(text) == config
    assert "#" not in text


def test_render_config_keeps_each_value_s_type_and_drops_a_bom():
    template = "\ufeff# run\nepochs: 1.0\nmixup: 1\naug: false\ndropout: 0\n"
    config = {"epochs": 1, "mixup": True, "aug": 0, "dropout": 0.0}
    text = render_config(config, template)
    assert text.startswith("# run\n")
    loaded = yaml.safe_load(text)
    assert loaded == config and [type(v) for v in loaded.values()] == [int, bool, int, float]


def test_sampled_values_are_written_readably_inside_their_bounds_and_grid():
    space = parse_sweep_yaml(
        "parameters:\n"
        "  lr: {distribution: log_uniform, min: 0.0001, max: 0.1}\n"
        "  dropout: {distribution: uniform, min: 0.0, max: 0.12345675}\n"
        "  wd: {distribution: q_uniform, min: 0.0, max: 0.5, q: 0.05}\n"
        "  fine: {distribution: q_uniform, min: 0.1, max: 0.1000009, q: 0.0000003}\n"
        "  scale: {values: [0.1234567, 0.5]}\n"
        "  width: {distribution: int_uniform, min: 8, max: 64}\n"
    )
    written = space.readable(
        {
            "lr": 0.0061806980045350035,
            "dropout": 0.123456749,  # 6 digits would round it above its max
            "wd": 0.15000000000000002,
            "fine": 0.10000030000000001,
            "scale": 0.1234567,
            "width": 17,
        }
    )
    assert written == {
        "lr": 0.00618070,
        "dropout": 0.12345675,
        "wd": 0.15,
        "fine": 0.1000003,  # its grid point, not 0.1 (6 digits)
        "scale": 0.1234567,  # a listed value stays as listed
        "width": 17,
    }
