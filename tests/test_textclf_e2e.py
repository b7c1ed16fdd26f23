"""Your own text classifier through the whole testbed on real data (WordNet definitions by topic, from Debian's
wordnet-base): `compress --train/--valid/--test` builds it, `simulate --data` deploys it to a fleet that trains it
federatedly, with the results the dashboard reads."""

import json

import pytest

from edgefleet.cli import main
from edgefleet.results import OUTCOMES, Results
from edgefleet.rundir import TASK
from edgefleet.tasks.textclf.corpora import write_corpus

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wordnet(tmp_path_factory):
    out = tmp_path_factory.mktemp("wordnet")
    write_corpus("wordnet", out, per_class=60, seed=0, valid_fraction=0.15, test_fraction=0.15)
    return out


def files(wordnet):
    return [f"--{part}={wordnet / f'{part}.csv'}" for part in ("valid", "test")]


@pytest.fixture(scope="module")
def model(wordnet, tmp_path_factory):
    out = tmp_path_factory.mktemp("compress")
    # The deployment choice of the default build (the tiny preset ships its configured student): the variant that
    # ships may be either kind, and the fleet below takes it.
    assert main(["--quiet", "compress", "--preset", "tiny", f"--train={wordnet / 'train.csv'}",
                 f"--valid={wordnet / 'valid.csv'}", "--out", str(out), "--set", 'distill.deploy="best"']) == 0
    return out / "model.eflt"


def test_the_best_student_on_validation_within_the_budget_ships(model):
    report = json.loads((model.parent / "compression_report.json").read_text())
    deployment = report["deployment"]
    candidates, chosen = deployment["candidates"], deployment["chosen"]
    assert set(candidates) == set(report["ablation"]) and len(candidates) == 3
    for name, c in candidates.items():  # each candidate's figures are its written artifact's
        assert c["artifact_bytes"] == report["ablation"][name]["deployed"]["artifact_bytes"]
        deployed = report["ablation"][name]["deployed"]  # the validation accuracy of the method it ships with
        assert c["valid_accuracy"] == deployed["valid_accuracy"][deployed["quantization"]]
        assert c["fits"] == (c["artifact_bytes"] <= 500_000)
    fits = {n: c["valid_accuracy"] for n, c in candidates.items() if c["fits"]}
    assert fits and chosen in fits and fits[chosen] == max(fits.values())
    assert report["student"]["variant"] == chosen and report["artifact_bytes"] == model.stat().st_size
    assert report["quantization"]["int8"]["artifact_bytes"] == candidates[chosen]["artifact_bytes"]


def test_a_users_csv_goes_from_compress_to_simulate(wordnet, model, tmp_path):
    run = tmp_path / "sim"
    assert main(["--quiet", "simulate", "--preset", "tiny", "--model", str(model), f"--data={wordnet / 'train.csv'}",
                 *files(wordnet), "--devices", "60", "--cohort", "12", "--rounds", "3", "--out", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == "textclf" and summary["rounds"] == 3 and summary["epsilon"] is None
    for key in ("accuracy", "accuracy_start", "macro_f1", "macro_f1_start", "participation_rate", "oom_rate"):
        assert summary[key] is not None, key
    assert 0.0 <= summary["accuracy_start"] <= 1.0 and 0.0 <= summary["macro_f1"] <= 1.0
    rounds, devices = Results(run).rounds(), Results(run).devices()
    assert list(rounds["round"]) == [1, 2, 3] and {"accuracy", "macro_f1", "device_accuracy"} <= set(rounds)
    assert set(devices["outcome"]) <= set(OUTCOMES) and "correct" in devices
    trained = devices[(devices["outcome"] == "ok") & (devices["examples"] > 0)]
    assert len(trained) and (trained["bytes_up"] > 0).all()
    assert json.loads((run / TASK).read_text())["headline"] == "accuracy"


def test_a_model_trained_on_other_labels_is_refused(model, tmp_path, capsys):
    other = tmp_path / "other.csv"
    other.write_text("text,label\n" + "".join(f"a short text number {i},{'ab'[i % 2]}\n" for i in range(40)))
    code = main(["--quiet", "simulate", "--preset", "tiny", "--model", str(model), f"--data={other}",
                 "--out", str(tmp_path / "sim")])
    err = capsys.readouterr().err
    assert code == 2 and "trained on labels" in err and err.count("\n") == 1 and not (tmp_path / "sim").exists()


def test_a_users_classifier_gets_the_federation_yardstick(wordnet, model, tmp_path):
    """`bench federation --data`: start, the head trained centrally on every row the devices hold (picked on the
    validation rows), the whole student trained centrally, majority and naive-Bayes baselines, and a real federated
    run measured against them."""
    from edgefleet.rundir import FEDERATION_REPORT, YARDSTICK
    from simulation.federation import share_of_gain

    out = tmp_path / "bench"
    sets = ['federation.runs=["fedavgm"]', "federation.rounds=2", "federation.tail_rounds=2", "sim.devices=60",
            "sim.cohort=12", "federation.oracle_epochs=2", "federation.full_epochs=2", "federation.full_max_steps=5"]
    assert main(["--quiet", "bench", "federation", "--preset", "tiny", "--set", f'sim.model="{model}"',
                 f"--data={wordnet / 'train.csv'}", *files(wordnet), "--out", str(out),
                 *[a for s in sets for a in ("--set", s)]]) == 0
    report = json.loads((out / FEDERATION_REPORT).read_text())
    assert (report["task"], report["headline"]) == ("textclf", "accuracy")
    # The whole student, fine-tuned on the training rows and re-quantized: an artifact the runtime scores as the
    # start; its epoch picked on the validation rows (epoch 0, the deployed model, when no epoch beats it).
    full = report["oracle_full"]
    assert [e["epoch"] for e in full["epochs"]] == [0, 1, 2] and sum(e["chosen"] for e in full["epochs"]) == 1
    chosen = next(e for e in full["epochs"] if e["chosen"])
    assert chosen["valid"] == max(e["valid"] for e in full["epochs"])
    from compression.runtime.artifact import read_artifact
    written, deployed = read_artifact(out / full["artifact"]), read_artifact(model)
    assert written.config == deployed.config and written.vocab == deployed.vocab
    assert written.meta["chosen_epoch"] == chosen["epoch"]
    if chosen["epoch"] == 0:
        assert full["accuracy"] == report["start"]["accuracy"]
    assert report["oracle_item_residual"] is None
    start, oracle = report["start"]["accuracy"], report["oracle"]["accuracy"]
    epochs = report["oracle"]["epochs"]
    assert epochs[0]["epoch"] == 0 and len(epochs) == 1 + 2 * 4  # the deployed head, then 4 checks an epoch
    assert set(report["baselines"]) == {"majority", "naive_bayes"}
    assert report["test_rows"] == sum(1 for _ in open(wordnet / "test.csv")) - 1
    run, = report["runs"]
    assert run["share_of_oracle_gain"] == (None if oracle <= start else
                                           pytest.approx(share_of_gain(run["accuracy"], start, oracle)))
    yardstick = json.loads((out / run["seeds"][0]["dir"] / YARDSTICK).read_text())
    assert yardstick["oracle"]["accuracy"] == oracle and yardstick["oracle_full"]["accuracy"] == full["accuracy"]
