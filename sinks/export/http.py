"""The export API: ``POST /exports`` starts a job, ``GET /exports/{id}`` reports it.

``POST /exports`` takes an :class:`~sinks.export.config.ExportRequest` as JSON and answers
``202`` with the job's status and ``Location``; ``422`` for an invalid request, ``409`` when an
export of that name is already running. ``GET /exports/{id}`` answers the status (``running``,
``succeeded``, ``failed``), progress, error and, once done, the manifest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic import SecretStr, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from schemas.access import refusal
from sinks.export.config import ExportRequest
from sinks.export.jobs import JobConflict, Jobs

Endpoint = Callable[[Request], Awaitable[JSONResponse]]


def create_app(jobs: Jobs, token: SecretStr | None = None) -> Starlette:
    """Every route writes or describes datasets of per-user events, so every route asks for
    ``token`` as a bearer token when one is given (``401`` otherwise; see
    :mod:`schemas.access`)."""

    def guarded(endpoint: Endpoint) -> Endpoint:
        async def serve(request: Request) -> JSONResponse:
            refused = refusal(request.headers.get("authorization"), token)
            if refused is not None:
                return JSONResponse(
                    {"error": refused.message},
                    status_code=401,
                    headers={"WWW-Authenticate": refused.challenge},
                )
            return await endpoint(request)

        return serve

    async def start(request: Request) -> JSONResponse:
        try:
            export = ExportRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False, include_context=False)
            return JSONResponse({"errors": errors}, status_code=422)
        try:
            job = jobs.start(export)
        except JobConflict as exc:
            return JSONResponse({"error": str(exc), "job": exc.job_id}, status_code=409)
        headers = {"Location": f"/exports/{job.id}"}
        return JSONResponse(job.status(), status_code=202, headers=headers)

    async def status(request: Request) -> JSONResponse:
        job = jobs.get(request.path_params["job_id"])
        if job is None:
            return JSONResponse({"error": "no such export job"}, status_code=404)
        return JSONResponse(job.status())

    async def listing(_request: Request) -> JSONResponse:
        return JSONResponse([job.status() for job in jobs.all()])

    return Starlette(
        routes=[
            Route("/exports", guarded(start), methods=["POST"]),
            Route("/exports", guarded(listing), methods=["GET"]),
            Route("/exports/{job_id}", guarded(status), methods=["GET"]),
        ]
    )
