"""vla-serve: serve a policy (a VLA checkpoint on a GPU host) to remote runners over websockets.

    vla-serve policy=vla policy.checkpoint=outputs/train/pick/checkpoints/last
    VLA_SERVE_TOKEN=... vla-serve policy=vla policy.checkpoint=<dir> host=0.0.0.0 port=8765

The first line on stdout is `serving on ws://HOST:PORT` (with the real port when port=0). It binds to
127.0.0.1 unless told otherwise, and refuses any other address without a token. Messages are msgpack
with numpy arrays (never pickle), size-limited and schema-checked; see `vla.serve.protocol`. Ctrl-C or
SIGTERM stops it cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING, DictConfig

from vla.apps.common import hydra_app, instantiate
from vla.errors import VLAError

APP = "vla-serve"
TOKEN_ENV = "VLA_SERVE_TOKEN"


@dataclass
class ServeConfig:
    policy: Any = MISSING
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    max_message_mb: float = 32.0
    max_clients: int = 8


def _token(cfg: DictConfig) -> str | None:
    # From the environment by default, so the secret stays out of shell history, configs and logs.
    return cfg.token or os.environ.get(TOKEN_ENV) or None


def _validate(cfg: DictConfig) -> None:
    from vla.serve.server import check_bind

    if not 0 <= cfg.port <= 65535:
        raise VLAError(f"port={cfg.port}: must be in 0..65535 (0: any free port)")
    if not 0 < cfg.max_message_mb <= 1024:
        raise VLAError(f"max_message_mb={cfg.max_message_mb}: must be in (0, 1024]")
    if cfg.max_clients < 1:
        raise VLAError(f"max_clients={cfg.max_clients}: must be at least 1")
    check_bind(cfg.host, _token(cfg))  # before the (slow) policy load


async def _serve(server: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        print(f"{APP}: {sig.name}: stopping", file=sys.stderr, flush=True)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    await server.run(stop, on_ready=lambda url: print(f"serving on {url}", flush=True))


def serve(cfg: DictConfig) -> None:
    from vla.serve.server import PolicyServer

    _validate(cfg)
    policy = instantiate(cfg.policy, "policy", robot=None)
    server = PolicyServer(
        policy,
        host=cfg.host,
        port=cfg.port,
        token=_token(cfg),
        max_message_bytes=int(cfg.max_message_mb * 1024 * 1024),
        max_clients=cfg.max_clients,
    )
    try:
        asyncio.run(_serve(server))
    except OSError as e:
        raise VLAError(f"cannot listen on {cfg.host}:{cfg.port}: {e.strerror or e}") from None


@hydra_app(APP, "serve", ServeConfig)
def main(cfg: DictConfig) -> None:
    logging.getLogger("vla.serve").setLevel(logging.INFO)  # connects, disconnects, errors
    logging.getLogger("vla.serve.websockets").setLevel(logging.WARNING)
    serve(cfg)


if __name__ == "__main__":
    main()
