"""``/clients``: administrators register, inspect, re-key and delete confidential clients."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from auth_service.clients import service
from auth_service.clients.schemas import ClientCreate, ClientRead, ClientWithSecret
from auth_service.deps import AdminUser, ClockDep, HasherDep, SessionDep
from auth_service.responses import AUTHENTICATED, error_responses
from svckit.schemas import Message
from svckit.tokens import CLIENT_ID_PATTERN

router = APIRouter(prefix="/clients", tags=["clients"])

ClientIdPath = Annotated[str, Path(pattern=CLIENT_ID_PATTERN, description="The client's id")]
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _secret_response(client: ClientWithSecret, response: Response) -> ClientWithSecret:
    response.headers.update(_NO_STORE)
    return client


@router.get(
    "",
    response_model=list[ClientRead],
    summary="List registered clients (admin)",
    responses=error_responses(422, *AUTHENTICATED),
)
async def list_clients(
    _admin: AdminUser,
    session: SessionDep,
    response: Response,
    skip: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
) -> list[ClientRead]:
    clients, total = await service.list_clients(session, skip=skip, limit=limit)
    response.headers["X-Total-Count"] = str(total)
    return [ClientRead.model_validate(c) for c in clients]


@router.post(
    "",
    response_model=ClientWithSecret,
    summary="Register a confidential client (admin); the secret is shown only here",
    responses=error_responses(400, 422, *AUTHENTICATED),
)
async def create_client(
    body: ClientCreate,
    _admin: AdminUser,
    session: SessionDep,
    hasher: HasherDep,
    clock: ClockDep,
    response: Response,
) -> ClientWithSecret:
    client, secret = await service.create_client(session, hasher, body, now=clock())
    shown = ClientWithSecret(**ClientRead.model_validate(client).model_dump(), client_secret=secret)
    return _secret_response(shown, response)


@router.get(
    "/{client_id}",
    response_model=ClientRead,
    summary="Read a registered client (admin)",
    responses=error_responses(404, 422, *AUTHENTICATED),
)
async def read_client(
    client_id: ClientIdPath, _admin: AdminUser, session: SessionDep
) -> ClientRead:
    return ClientRead.model_validate(await service.get_client(session, client_id))


@router.delete(
    "/{client_id}",
    response_model=Message,
    summary="Delete a registered client and its refresh tokens (admin)",
    responses=error_responses(404, 422, *AUTHENTICATED),
)
async def delete_client(client_id: ClientIdPath, _admin: AdminUser, session: SessionDep) -> Message:
    await service.delete_client(session, client_id)
    return Message(message="Client deleted")


@router.post(
    "/{client_id}/secret",
    response_model=ClientWithSecret,
    summary="Rotate a client's secret (admin); the old one stops working at once",
    responses=error_responses(404, 422, *AUTHENTICATED),
)
async def rotate_secret(
    client_id: ClientIdPath,
    _admin: AdminUser,
    session: SessionDep,
    hasher: HasherDep,
    clock: ClockDep,
    response: Response,
) -> ClientWithSecret:
    client, secret = await service.rotate_secret(session, hasher, client_id, now=clock())
    shown = ClientWithSecret(**ClientRead.model_validate(client).model_dump(), client_secret=secret)
    return _secret_response(shown, response)
