"""sweeps.studies: storage URL mapping, SigOpt parameter mapping, ask/tell."""

from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from sweeps import studies


def test_storage_url_follows_the_database(settings, monkeypatch):
    monkeypatch.delenv("LUMINIDE_OPTUNA_STORAGE", raising=False)
    settings.LUMINIDE_OPTUNA_STORAGE = ""
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": "/srv/luminide.sqlite3"}
    assert studies.storage_url(sqlite) == "sqlite:////srv/luminide.sqlite3"
    postgres = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "lum",
        "USER": "u",
        "PASSWORD": "p@ss",
        "HOST": "db",
        "PORT": 5432,
    }
    assert studies.storage_url(postgres) == "postgresql+psycopg://u:p%40ss@db:5432/lum"
    settings.LUMINIDE_OPTUNA_STORAGE = "sqlite:///elsewhere.db"
    assert studies.storage_url(postgres) == "sqlite:///elsewhere.db"


def test_sigopt_distributions():
    dists = studies.sigopt_distributions(
        [
            {
                "name": "lr",
                "type": "double",
                "bounds": {"min": 1e-4, "max": 1.0},
                "transformation": "log",
            },
            {"name": "d", "type": "double", "bounds": {"min": 0.0, "max": 0.5}},
            {"name": "w", "type": "int", "bounds": {"min": 8, "max": 64}},
            {
                "name": "a",
                "type": "categorical",
                "categorical_values": [{"name": "relu"}, {"name": "tanh"}],
            },
        ]
    )
    assert dists["lr"] == FloatDistribution(1e-4, 1.0, log=True)
    assert dists["d"] == FloatDistribution(0.0, 0.5)
    assert dists["w"] == IntDistribution(8, 64)
    assert dists["a"] == CategoricalDistribution(["relu", "tanh"])
    with pytest.raises(studies.SpaceError) as exc:
        studies.sigopt_distributions(
            [{"name": "x", "type": "double", "bounds": {"min": 1, "max": 0}}]
        )
    assert exc.value.field == "parameters[0].min"


def test_ask_tell_roundtrip(settings, tmp_path):
    settings.LUMINIDE_OPTUNA_STORAGE = f"sqlite:///{tmp_path / 'o.sqlite3'}"
    dists = {"x": FloatDistribution(0, 1), "k": CategoricalDistribution(["a", "b"])}
    study = studies.create_study("roundtrip", ["minimize"], seed=1)
    t = studies.ask(study, dists)
    assert 0 <= t.params["x"] <= 1 and t.params["k"] in ("a", "b")
    studies.tell(study, t.number, 0.3)
    studies.tell(study, t.number, 0.9)  # idempotent: already finished
    fixed = studies.ask(study, dists, {"x": 0.25, "k": "b"})
    assert fixed.params == {"x": 0.25, "k": "b"}
    studies.tell(study, fixed.number, state=TrialState.FAIL)
    loaded = studies.load_study("roundtrip")
    assert [tr.state for tr in loaded.trials] == [TrialState.COMPLETE, TrialState.FAIL]
    assert loaded.best_value == 0.3
    assert studies.delete_study("roundtrip") and not studies.delete_study("roundtrip")


def test_fixed_values_taken_by_an_ask_in_another_process_are_enqueued_again(settings, tmp_path):
    settings.LUMINIDE_OPTUNA_STORAGE = f"sqlite:///{tmp_path / 'o.sqlite3'}"
    dists = {"x": FloatDistribution(0, 1)}
    study = studies.create_study("fixed", ["minimize"], seed=1)
    other = studies.load_study("fixed")  # another web process's handle
    enqueue = study.enqueue_trial
    taken = []

    def enqueue_then_the_other_asks(*args, **kwargs):
        enqueue(*args, **kwargs)
        if not taken:  # the other process asks between our enqueue and our ask
            taken.append(other.ask(dists))

    study.enqueue_trial = enqueue_then_the_other_asks
    fixed = studies.ask(study, dists, {"x": 0.25})
    assert fixed.params == {"x": 0.25}
    assert taken[0].params == {"x": 0.25}  # it got our values; we got them again
    states = {t.number: t.state for t in studies.load_study("fixed").trials}
    assert states[fixed.number] == TrialState.RUNNING


@pytest.mark.django_db
def test_same_sqlite_file_inside_a_transaction_fails_fast(settings):
    from django.db import connection

    settings.LUMINIDE_OPTUNA_STORAGE = f"sqlite:///{connection.settings_dict['NAME']}"
    with pytest.raises(RuntimeError, match="outside"):
        studies.load_study("anything")
