"""/v1/networks: architectures, validated by the engine."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response, status

from app.api.deps import CallerDep, Ctx, PageDep, errors
from app.api.schemas.common import Page, openapi_examples
from app.api.schemas.networks import NetworkCreate, NetworkRead
from app.services import networks as service

router = APIRouter(prefix="/v1/networks", tags=["networks"], responses=errors(401))


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=NetworkRead, responses=errors(413, 422)
)
def create_network(
    body: Annotated[NetworkCreate, Body(openapi_examples=openapi_examples(NetworkCreate))],
    ctx: Ctx,
    caller: CallerDep,
) -> NetworkRead:
    """A dense network: input width, then layers of units with an activation each."""
    row = service.create_network(
        ctx.database,
        ctx.settings,
        owner_id=caller.owner_id,
        name=body.name,
        input_size=body.input_size,
        layers=[layer.model_dump() for layer in body.layers],
        loss=body.loss,
        init=body.init,
        seed=body.seed,
    )
    return NetworkRead.from_row(row)


@router.get("", response_model=Page[NetworkRead], responses=errors(422))
def list_networks(ctx: Ctx, caller: CallerDep, page: PageDep) -> Page[NetworkRead]:
    rows, total = service.list_networks(
        ctx.database, owner_id=caller.owner_id, limit=page.limit, offset=page.offset
    )
    return page.result([NetworkRead.from_row(r) for r in rows], total)


@router.get("/{network_id}", response_model=NetworkRead, responses=errors(404, 422))
def get_network(network_id: str, ctx: Ctx, caller: CallerDep) -> NetworkRead:
    row = service.get_network(ctx.database, owner_id=caller.owner_id, network_id=network_id)
    return NetworkRead.from_row(row)


@router.delete(
    "/{network_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(404, 422),
)
def delete_network(network_id: str, ctx: Ctx, caller: CallerDep) -> Response:
    """Delete; its jobs and models keep their own copy of the architecture."""
    service.delete_network(ctx.database, owner_id=caller.owner_id, network_id=network_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
