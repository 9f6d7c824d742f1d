"""The real packaged all-MiniLM-L6-v2 checkpoint on the demo data: a quality floor, HF-examples style.
Run with `python -m pytest -m slow` (about 2 minutes on 2 cores)."""
import json

import pytest

from tests.conftest import ROOT, write_params
from tests.stages.test_pipeline_stages import run_all


@pytest.mark.slow
def test_packaged_checkpoint_learns_the_demo_sentiment_data(tmp_path):
    params = write_params(tmp_path / "params.yaml", {"tracking.log_model": False})
    run_all(tmp_path, params, data=ROOT / "data/demo/reviews.csv")
    metrics = json.loads((tmp_path / "reports/metrics.json").read_text())
    assert metrics["accuracy"] >= 0.80 and metrics["f1_macro"] >= 0.80, metrics
