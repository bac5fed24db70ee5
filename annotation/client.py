"""A thin wrapper over label-studio-sdk 2.x: the few calls push and pull need.

Every failure of the server (unreachable, bad token, missing project, refused request)
becomes one ``ReviewError`` line. The API key is held only by the SDK client: it is
never put into a message, and any text taken from a server reply is scrubbed of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from parallelner.errors import ReviewError
from parallelner.redaction import redact_url
from parallelner.settings import Settings

__all__ = ["ReviewClient", "IMPORT_BATCH", "connect"]

IMPORT_BATCH = 500  # tasks per import request (Label Studio accepts far more; keeps requests small)


def connect(settings: Settings) -> ReviewClient:
    """A client for the Label Studio server named in the settings (URL and API key)."""
    key = settings.label_studio_api_key
    return ReviewClient(settings.label_studio_url, key.get_secret_value() if key else None)


class ReviewClient:
    """Connection to one Label Studio server, authenticated with an API key."""

    def __init__(self, url: str, api_key: str | None, *, timeout: float = 120.0):
        self._url = url.rstrip("/")  # may hold user:password@: only the SDK sees it
        self.url = redact_url(self._url)  # what messages and reports show
        if not api_key:
            raise ReviewError(
                "no Label Studio API key: set PARALLELNER_LABEL_STUDIO_API_KEY "
                "(a personal access token or a legacy token from Account & Settings)"
            )
        self._secret = api_key
        with self._errors("connecting"):
            self._ls = LabelStudio(base_url=self._url, api_key=api_key, timeout=timeout)

    # -- error mapping ------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        text = text.replace(self._url, self.url)
        return text.replace(self._secret, "***") if self._secret else text

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except ReviewError:
            raise
        except ApiError as exc:
            status = exc.status_code
            if status in (401, 403):
                msg = (
                    f"Label Studio at {self.url} refused the API key (HTTP {status}) while "
                    f"{doing}: check PARALLELNER_LABEL_STUDIO_API_KEY"
                )
            elif status == 404:
                msg = f"Label Studio at {self.url}: not found (HTTP 404) while {doing}"
            else:
                body = self._scrub(json.dumps(exc.body, default=str)[:300])
                msg = f"Label Studio at {self.url} answered HTTP {status} while {doing}: {body}"
            raise ReviewError(msg) from None
        except httpx.TimeoutException:
            raise ReviewError(f"Label Studio at {self.url} timed out while {doing}") from None
        except httpx.HTTPError as exc:
            raise ReviewError(
                f"cannot reach Label Studio at {self.url} while {doing} "
                f"({type(exc).__name__}): is the server running? check PARALLELNER_LABEL_STUDIO_URL"
            ) from None
        except Exception as exc:  # the SDK's own errors (e.g. an expired access token)
            raise ReviewError(
                f"Label Studio at {self.url}: {type(exc).__name__} while {doing}: "
                f"{self._scrub(str(exc))[:300]}"
            ) from None

    # -- calls ----------------------------------------------------------------------------
    def whoami(self) -> str:
        """The authenticated user's e-mail (checks URL and token in one request)."""
        with self._errors("checking the API key"):
            me = self._ls.users.whoami()
        return str(getattr(me, "email", None) or getattr(me, "username", ""))

    def users(self) -> dict[int, str]:
        """User id -> e-mail of every user the key can see (exports name users by id)."""
        with self._errors("listing users"):
            return {int(u.id): str(u.email or u.username or u.id) for u in self._ls.users.list()}

    def find_project(self, title: str) -> int | None:
        """Id of the project with exactly this title (the oldest if several), or None."""
        with self._errors(f"looking up project {title!r}"):
            ids = [
                p.id for p in self._ls.projects.list(title=title, page_size=100) if p.title == title
            ]
        return min(ids) if ids else None

    def project_config(self, project_id: int) -> str:
        """The project's current labeling config."""
        with self._errors(f"reading project {project_id}"):
            return self._ls.projects.get(project_id).label_config or ""

    def project_summary(self, project_id: int) -> dict[str, Any]:
        """Counts Label Studio keeps for a project (tasks, finished, annotations...)."""
        with self._errors(f"reading project {project_id}"):
            p = self._ls.projects.get(project_id)
        keys = ("task_number", "finished_task_number", "total_annotations_number",
                "skipped_annotations_number", "total_predictions_number")  # fmt: skip
        return {"project_id": project_id, "title": p.title,
                **{k: getattr(p, k, None) for k in keys}}  # fmt: skip

    def create_project(
        self, title: str, label_config: str, instructions: str, model_version: str | None = None
    ) -> int:
        """Create a review project; returns its id.

        ``model_version`` selects the predictions that pre-fill an annotator's new
        annotation (Label Studio pre-labels only from the project's model version).
        """
        with self._errors(f"creating project {title!r}"):
            p = self._ls.projects.create(
                title=title,
                label_config=label_config,
                expert_instruction=instructions,
                show_instruction=True,
                show_skip_button=True,
                enable_empty_annotation=False,
                show_collab_predictions=True,
                **({"model_version": model_version} if model_version else {}),
            )
        return int(p.id)

    def update_project(self, project_id: int, **fields: Any) -> None:
        """Change project fields (label_config, expert_instruction, model_version...)."""
        with self._errors(f"updating project {project_id}"):
            self._ls.projects.update(project_id, **fields)

    def project_url(self, project_id: int) -> str:
        """The project's Data Manager page (the task list reviewers start from)."""
        return f"{self.url}/projects/{project_id}/data"

    def view_titles(self, project_id: int) -> list[str]:
        """Titles of the project's Data Manager tabs (views)."""
        with self._errors(f"listing the views of project {project_id}"):
            views = self._ls.views.list(project=project_id)
        return [str((v.data or {}).get("title", "")) for v in views]

    def create_view(self, project_id: int, data: dict[str, Any]) -> None:
        """Add a Data Manager tab (its title, hidden columns...) to the project."""
        with self._errors(f"creating a view in project {project_id}"):
            self._ls.views.create(project=project_id, data=data)  # type: ignore[arg-type]

    def project_model_version(self, project_id: int) -> str | None:
        """The model version whose predictions pre-fill new annotations."""
        with self._errors(f"reading project {project_id}"):
            return self._ls.projects.get(project_id).model_version or None

    def task_record_ids(self, project_id: int) -> dict[str, int]:
        """record_id -> task id of every task in the project."""
        out: dict[str, int] = {}
        with self._errors(f"listing the tasks of project {project_id}"):
            pages = self._ls.tasks.list(
                project=project_id, fields="task_only", include="id,data", page_size=1000
            )
            for t in pages:
                rid = (t.data or {}).get("record_id")
                if rid is not None:
                    out.setdefault(str(rid), int(t.id))
        return out

    def import_tasks(self, project_id: int, tasks: Sequence[dict[str, Any]]) -> int:
        """Import tasks (with their predictions) in batches; returns how many were created."""
        created = 0
        for i in range(0, len(tasks), IMPORT_BATCH):
            batch = list(tasks[i : i + IMPORT_BATCH])
            with self._errors(f"importing tasks into project {project_id}"):
                resp = self._ls.projects.import_tasks(project_id, request=batch)
            created += int(getattr(resp, "task_count", None) or len(batch))
        return created

    def export(self, project_id: int) -> list[dict[str, Any]]:
        """Every task of the project with its annotations and predictions (JSON export)."""
        with self._errors(f"exporting project {project_id}"):
            chunks = self._ls.projects.exports.download_sync(
                project_id, export_type="JSON", download_all_tasks=True, download_resources=False
            )
            data = b"".join(chunks)
        return json.loads(data)

    def http(self) -> Any:
        """The SDK client, for tests that act as an annotator through the API."""
        return self._ls
