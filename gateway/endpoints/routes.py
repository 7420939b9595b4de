"""The route table: every route, its handler and what ``/openapi.json`` says of it.

The same table drives dispatch (``gateway.http.router``) and the OpenAPI document
(``gateway.contract.openapi``). It is the one module that knows every endpoint.
"""

from __future__ import annotations

from gateway.contract.schemas import (
    CHAT_RESPONSE,
    CHAT_STREAM,
    HEALTH,
    MODEL,
    MODEL_LIST,
)
from gateway.contract.schemas_embeddings import EMBEDDINGS_RESPONSE
from gateway.contract.schemas_images import EDITS_ENCODING, IMAGES_RESPONSE
from gateway.contract.schemas_music import (
    ARTIFACT,
    TASK,
    TASK_LIST,
    TASK_QUERY,
    UPLOAD_ENCODING,
    UPLOAD_REQUEST,
)
from gateway.contract.schemas_responses import (
    RESPONSE,
    RESPONSE_DELETED,
    RESPONSES_STREAM,
)
from gateway.endpoints.artifacts import ArtifactEndpoints
from gateway.endpoints.chat import ChatEndpoint
from gateway.endpoints.embeddings import EmbeddingsEndpoint
from gateway.endpoints.images import ImageEditsEndpoint, ImagesEndpoint
from gateway.endpoints.models import CatalogEndpoints
from gateway.endpoints.music import MusicEndpoint
from gateway.endpoints.operations import OperationsEndpoints
from gateway.endpoints.responses import ResponsesEndpoint
from gateway.endpoints.responses_stored import StoredResponseEndpoints
from gateway.endpoints.tasks import TaskEndpoints
from gateway.endpoints.uploads import UploadEndpoint
from gateway.http.router import Route

_BINARY = {"schema": {"type": "string", "format": "binary"}}


def _json(schema: dict[str, object]) -> dict[str, object]:
    return {"application/json": {"schema": schema}}


def route_table(
    *,
    chat: ChatEndpoint,
    embeddings: EmbeddingsEndpoint,
    responses: ResponsesEndpoint,
    stored_responses: StoredResponseEndpoints,
    models: CatalogEndpoints,
    music: MusicEndpoint,
    images: ImagesEndpoint,
    image_edits: ImageEditsEndpoint,
    uploads: UploadEndpoint,
    artifacts: ArtifactEndpoints,
    tasks: TaskEndpoints,
    operations: OperationsEndpoints,
) -> list[Route]:
    return [
        Route(
            "POST",
            "/v1/chat/completions",
            chat,
            "Create a chat completion (OpenAI-compatible; stream with stream: true)",
            "Chat",
            request_schema=chat.request_schema(),
            responses={200: {**_json(CHAT_RESPONSE), "text/event-stream": {"schema": CHAT_STREAM}}},
        ),
        Route(
            "POST",
            "/v1/embeddings",
            embeddings,
            "Create embeddings (OpenAI-compatible; float or base64)",
            "Embeddings",
            request_schema=embeddings.request_schema(),
            responses={200: _json(EMBEDDINGS_RESPONSE)},
        ),
        Route(
            "POST",
            "/v1/responses",
            responses,
            "Create a response (OpenAI Responses API on every chat model; stream with "
            "stream: true)",
            "Responses",
            request_schema=responses.request_schema(),
            responses={200: {**_json(RESPONSE), "text/event-stream": {"schema": RESPONSES_STREAM}}},
        ),
        Route(
            "GET",
            "/v1/responses/{id}",
            stored_responses.get,
            "Read a stored response",
            "Responses",
            responses={200: _json(RESPONSE)},
        ),
        Route(
            "DELETE",
            "/v1/responses/{id}",
            stored_responses.delete,
            "Delete a stored response",
            "Responses",
            responses={200: _json(RESPONSE_DELETED)},
        ),
        Route(
            "GET",
            "/v1/models",
            models.list_models,
            "List the models this key may use",
            "Models",
            responses={200: _json(MODEL_LIST)},
        ),
        Route(
            "GET",
            "/v1/models/{id}",
            models.get_model,
            "Inspect one model",
            "Models",
            responses={200: _json(MODEL)},
            rest=True,  # catalog ids may contain "/"
        ),
        Route(
            "POST",
            "/v1/music/generations",
            music,
            "Create a music generation task (text-to-music, or reference audio)",
            "Music",
            request_schema=music.request_schema(),
            responses={202: _json(TASK)},
        ),
        Route(
            "POST",
            "/v1/images/generations",
            images,
            "Create images from a prompt (OpenAI-compatible; b64_json or a gateway URL; "
            "Prefer: respond-async answers 202 with a task)",
            "Images",
            request_schema=images.request_schema(),
            responses={200: _json(IMAGES_RESPONSE), 202: _json(TASK)},
        ),
        Route(
            "POST",
            "/v1/images/edits",
            image_edits,
            "Edit images after a prompt (OpenAI-compatible multipart; or image_artifact_id; "
            "Prefer: respond-async answers 202 with a task)",
            "Images",
            request_schema=image_edits.request_schema(),
            request_media="multipart/form-data",
            request_encoding=EDITS_ENCODING,
            responses={200: _json(IMAGES_RESPONSE), 202: _json(TASK)},
        ),
        Route(
            "POST",
            "/v1/uploads",
            uploads,
            "Upload one audio or image file (multipart field 'file', up to 100 MB)",
            "Uploads",
            request_schema=UPLOAD_REQUEST,
            request_media="multipart/form-data",
            request_encoding=UPLOAD_ENCODING,
            responses={200: _json(ARTIFACT)},
        ),
        Route(
            "GET",
            "/v1/artifacts/{id}",
            artifacts.metadata,
            "Inspect an artifact (an upload or generated audio)",
            "Artifacts",
            responses={200: _json(ARTIFACT)},
        ),
        Route(
            "GET",
            "/v1/artifacts/{id}/content",
            artifacts.content,
            "Download an artifact's bytes (Range supported)",
            "Artifacts",
            responses={
                200: {"audio/*": _BINARY, "image/*": _BINARY},
                206: {"audio/*": _BINARY, "image/*": _BINARY},
            },
        ),
        Route(
            "GET",
            "/v1/tasks",
            tasks.list,
            "List this key's tasks, newest first",
            "Tasks",
            query=tuple(TASK_QUERY),
            responses={200: _json(TASK_LIST)},
        ),
        Route(
            "GET",
            "/v1/tasks/{id}",
            tasks.get,
            "Inspect a task",
            "Tasks",
            responses={200: _json(TASK)},
        ),
        Route(
            "POST",
            "/v1/tasks/{id}/cancel",
            tasks.cancel,
            "Cancel a task (final at once; the provider is told where it can be)",
            "Tasks",
            responses={200: _json(TASK)},
        ),
        Route(
            "GET",
            "/v1/health",
            operations.health,
            "Service health (no auth, no upstream call)",
            "Health",
            auth=False,
            responses={200: _json(HEALTH)},
        ),
        Route(
            "GET",
            "/metrics",
            operations.metrics_text,
            "Prometheus metrics",
            "Operations",
            auth=False,
            public=False,
        ),
        Route(
            "GET",
            "/openapi.json",
            operations.openapi,
            "This gateway's OpenAPI 3.1 document: every /v1 route with its schemas",
            "Docs",
            auth=False,
            public=False,
        ),
        Route(
            "GET",
            "/openapi.yaml",
            operations.openapi_yaml_text,
            "The same OpenAPI document as YAML",
            "Docs",
            auth=False,
            public=False,
        ),
        Route(
            "GET",
            "/llms.txt",
            operations.llms,
            "This map of the gateway's routes and documents (llmstxt.org format)",
            "Docs",
            auth=False,
            public=False,
        ),
    ]
