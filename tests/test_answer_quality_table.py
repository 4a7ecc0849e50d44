"""The answer-quality benchmark's verdict: issue 11's acceptance, computed from its table."""

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def answer_quality():
    path = os.path.join(ROOT, "benchmarks", "answer_quality.py")
    spec = importlib.util.spec_from_file_location("answer_quality", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def results(pick_a, pick_b):
    seed_a = {"seed: focal g=0": [0.80, 0.90], "seed: weighted CE": [0.70, 0.70]}
    seed_b = {"seed: focal g=0": [0.60, 0.60], "seed: weighted CE": [0.50, 0.90]}
    out = {("a", "compare (saved model)"): pick_a, ("b", "compare (saved model)"): pick_b}
    out[("a", "compare (saved model)|bacc")] = [0.0, 0.0]  # never counted as a recipe
    out[("a", "seed: focal g=0|bacc")] = [1.0, 1.0]
    out[("b", "seed: focal g=0|bacc")] = [1.0, 1.0]
    out[("b", "compare (saved model)|bacc")] = [0.0, 0.0]
    for name, recipes in (("a", seed_a), ("b", seed_b)):
        for recipe, values in recipes.items():
            out[(name, recipe)] = values
            out[(name, recipe + "|bacc")] = [1.0, 1.0]
    return out


def test_acceptance_holds_within_the_margin_and_on_average(answer_quality):
    # best seed recipe: a 0.85 (focal g=0), b 0.70 (weighted CE); compare 0.83 and 0.75
    text = answer_quality.acceptance(results([0.80, 0.86], [0.75, 0.75]), ["a", "b"])
    assert "on every set): holds on every set;" in text
    assert "on average over the sets): holds (0.790 vs 0.775)" in text


def test_acceptance_names_the_set_and_the_average_gap(answer_quality):
    # a: 0.81 < 0.85 - 0.03; mean 0.755 against 0.775
    text = answer_quality.acceptance(results([0.80, 0.82], [0.70, 0.70]), ["a", "b"])
    assert "on every set): fails on a;" in text
    assert "fails by 0.020 (0.755 vs 0.775)" in text


def test_table_has_the_gap_row(answer_quality):
    table = answer_quality.format_table(results([0.80, 0.86], [0.75, 0.75]), ["a", "b"])
    assert "| best seed recipe (per set) | 0.850 | 0.700 | 0.775 |" in table
    assert "| compare - best seed recipe | -0.020 | +0.050 | +0.015 |" in table


def test_runs_of_single_sets_combine_into_one_table(answer_quality, tmp_path):
    """One process per set writes its --json; --combine makes the table, the verdict, the
    picks and the wall seconds of all of them, in the order of the files."""
    scores = results([0.80, 0.86], [0.75, 0.75])
    files = []
    for name in ("b", "a"):
        path = tmp_path / f"{name}.json"
        mine = {key: v for key, v in scores.items() if key[0] == name}
        seconds = {(name, "compare (saved model)"): [40.0, 52.0]}
        answer_quality.save_json(path, mine, {name: [f"ce + tuned threshold ({name})"]}, seconds, 9)
        files.append(str(path))
    text = answer_quality.combine(files)
    assert "| method | b | a | mean over sets |" in text
    assert "| best seed recipe (per set) | 0.700 | 0.850 | 0.775 |" in text
    assert "on average over the sets): holds (0.790 vs 0.775)" in text
    assert "- `a`: ce + tuned threshold (a)" in text
    assert "- `b`: compare (saved model) 40, 52" in text
