"""Where an upload goes: ground truth of a dataset, or a model's predictions."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


def _seg(value: str) -> str:
    # Ids go into URL paths; keep them one segment even if they hold "/".
    return quote(value, safe="")


@dataclass(frozen=True, slots=True)
class Target:
    dataset_id: str
    model_id: str | None = None
    model_run_id: str | None = None

    @property
    def kind(self) -> str:
        """The journal's name for this target."""
        if self.model_id:
            return f"model:{self.model_id}"
        if self.model_run_id:
            return f"model_run:{self.model_run_id}"
        return "annotations"

    @property
    def is_predictions(self) -> bool:
        return bool(self.model_id or self.model_run_id)

    @property
    def upload_route(self) -> str:
        ds = _seg(self.dataset_id)
        if self.model_id:
            return f"dataset/{ds}/model/{_seg(self.model_id)}/uploadPredictions"
        if self.model_run_id:
            return f"dataset/{ds}/modelRun/{_seg(self.model_run_id)}/uploadPredictions"
        return f"dataset/{ds}/annotate"

    def signed_url_route(self, request_id: str) -> str:
        """Where an async upload asks for the URL its NDJSON goes to."""
        return f"dataset/{_seg(self.dataset_id)}/signedUrl/{_seg(request_id)}"

    def readback_route(self, reference_id: str) -> str | None:
        """The route that returns what the server holds for one item, if any."""
        ds = _seg(self.dataset_id)
        if self.model_id:
            return f"dataset/{ds}/model/{_seg(self.model_id)}/referenceId/{_seg(reference_id)}"
        if self.model_run_id:
            return None
        return f"dataset/{ds}/refloc/{_seg(reference_id)}"

    @property
    def items_route(self) -> str:
        """The dataset's items (``Dataset.items`` in the official client)."""
        return f"dataset/{_seg(self.dataset_id)}/datasetItems"

    def preflight_checks(self) -> list[tuple[str, str]]:
        """GETs that prove the key works and the dataset (and model) exist.

        Each with what a 404 on it means, for the message.
        """
        checks = [
            (f"dataset/{_seg(self.dataset_id)}/info", f"dataset {self.dataset_id} does not exist")
        ]
        if self.model_id:
            checks.append((f"model/{_seg(self.model_id)}", f"model {self.model_id} does not exist"))
        return checks
