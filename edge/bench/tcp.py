"""The loopback TCP rows: a server in its own process(es), clients in another.

Every server answers the same handshake (mutual TLS, client certificate verified) and one
`GET /` with 200; the same asyncio load generator drives each, so the rows compare servers.
Nothing here leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import trio

from edge.bench.material import HOST, Material, edge_deployment
from edge.net import TcpListener

LOOPBACK = "127.0.0.1"
REQUEST = f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
_spawn = multiprocessing.get_context("spawn")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def _reuse_port_socket(port: int) -> socket.socket:
    """A listening socket other bench processes may bind as well: the kernel spreads
    connections over the processes (SO_REUSEPORT), as the issue's workers row asks."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((LOOPBACK, port))
    sock.listen(1024)
    return sock


# --- servers (each runs in a process of its own) ---------------------------------------------


async def _edge_server(material: Material, port: int, ready) -> None:
    async with trio.open_nursery() as nursery:
        deployment = await edge_deployment(material, nursery, "tcp")
        listener = TcpListener(_reuse_port_socket(port))
        await nursery.start(deployment.nodes["tcp"].serve, listener)
        ready.set()


def edge_server_process(material: Material, port: int, ready) -> None:
    trio.run(_edge_server, material, port, ready)


async def _asyncio_handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n")
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def _asyncio_server(material: Material, port: int, ready) -> None:
    server = await asyncio.start_server(
        _asyncio_handle, sock=_reuse_port_socket(port), ssl=material.server_context()
    )
    ready.set()
    async with server:
        await server.serve_forever()


def asyncio_server_process(material: Material, port: int, ready) -> None:
    asyncio.run(_asyncio_server(material, port, ready))


# --- the load generator (a process of its own) -------------------------------------------------


async def _client(context: ssl.SSLContext, port: int, deadline: float, counts: list[int]) -> None:
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection(
                LOOPBACK, port, ssl=context, server_hostname=HOST
            )
            writer.write(REQUEST)
            answer = await reader.read(4096)
            writer.close()
            counts[0 if answer.startswith(b"HTTP/1.") and b" 200 " in answer[:16] else 1] += 1
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            counts[1] += 1


async def _load(material: Material, port: int, seconds: float, concurrency: int) -> tuple:
    """(succeeded, failed, elapsed seconds, CPU seconds this process spent meanwhile)."""
    context = material.client_context()
    counts = [0, 0]
    started, cpu = time.monotonic(), time.process_time()
    deadline = started + seconds
    await asyncio.gather(*(_client(context, port, deadline, counts) for _ in range(concurrency)))
    return counts[0], counts[1], time.monotonic() - started, time.process_time() - cpu


def load_process(material: Material, port: int, seconds: float, concurrency: int, out) -> None:
    out.put(asyncio.run(_load(material, port, seconds, concurrency)))


# --- one measurement ---------------------------------------------------------------------------


def _end(process) -> None:
    """Stop a bench process for sure: terminate, then kill if it does not go."""
    if process.is_alive():
        process.terminate()
        process.join(10)
    if process.is_alive():
        process.kill()
        process.join()


def _wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"no server answered on {LOOPBACK}:{port} within {timeout:.0f} s")


@attrs.frozen
class Started:
    """A server running for one measurement: how to stop it, and its processes."""

    stop: Callable[[], None]
    pids: tuple[int, ...]


@attrs.frozen
class Measured:
    rate: float  # handshakes (with one 200 answer each) per second
    server_cpu_ms: float | None  # the server processes' CPU per handshake, where /proc tells
    load_busy: float  # CPU seconds per second of each load process: near 1.0, the load set the pace
    load_cpu_ms: float  # the load generator's CPU per handshake: the clients' share of the cores


def cpu_seconds(pids: tuple[int, ...]) -> float | None:
    """User + system CPU of these processes so far (Linux /proc), or None where unknown."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return None
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def shares(concurrency: int, processes: int) -> list[int]:
    """`concurrency` connections spread over `processes` load processes, none left empty."""
    if not 1 <= processes <= concurrency:
        raise ValueError(f"{processes} load processes cannot share {concurrency} connections")
    return [concurrency // processes + (i < concurrency % processes) for i in range(processes)]


def measure(start_server: Callable[[int], Started], material: Material,
            seconds: float, concurrency: int, load_processes: int = 1) -> Measured:
    """One round against the server `start_server` starts: its rate, and what it cost.

    The load comes from `load_processes` processes at once (one asyncio loop each, the
    connections shared among them): one process reaches at most about one core's worth of
    handshakes, so a server of several workers needs as many to show what it can do."""
    port = free_port()
    server = start_server(port)
    try:
        _wait_for_port(port)
        out = _spawn.Queue()
        loaders = [_spawn.Process(target=load_process,
                                  args=(material, port, seconds, share, out), daemon=True)
                   for share in shares(concurrency, load_processes)]
        before = cpu_seconds(server.pids)
        try:
            for loader in loaders:
                loader.start()
            results = [out.get(timeout=seconds + 120) for _ in loaders]
            after = cpu_seconds(server.pids)
        finally:
            for loader in loaders:
                _end(loader)
    finally:
        server.stop()
    ok, failed = sum(r[0] for r in results), sum(r[1] for r in results)
    elapsed, load_cpu = max(r[2] for r in results), sum(r[3] for r in results)
    if ok == 0:
        raise RuntimeError(f"no handshake succeeded ({failed} failed)")
    server_cpu = None if before is None or after is None else (after - before) * 1e3 / ok
    return Measured(ok / elapsed, server_cpu, load_cpu / elapsed / len(loaders),
                    load_cpu * 1e3 / ok)


def python_servers(target, material: Material, workers: int = 1):
    """A starter for `measure`: `workers` processes running `target` on one port."""

    def start(port: int) -> Started:
        processes = []

        def stop() -> None:
            for process in processes:
                _end(process)

        for _ in range(workers):
            ready = _spawn.Event()
            process = _spawn.Process(target=target, args=(material, port, ready), daemon=True)
            process.start()
            processes.append(process)
            if not ready.wait(60):
                stop()
                raise RuntimeError("a bench server did not start within 60 s")
        return Started(stop, tuple(process.pid for process in processes))

    return start


def openssl_server(material: Material):
    """A starter for the C anchor: openssl s_server requiring a client certificate."""
    binary = shutil.which("openssl")
    if binary is None:
        return None

    def start(port: int) -> Started:
        version = "-tls1_3" if material.tls == "1.3" else "-tls1_2"
        command = [
            binary, "s_server", "-accept", f"{LOOPBACK}:{port}", "-cert", str(material.server_cert),
            "-key", str(material.server_key), "-CAfile", str(material.tenant_ca), "-Verify", "2",
            "-www", "-quiet", "-num_tickets", "0", version,
        ]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)

        def stop() -> None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

        return Started(stop, (process.pid,))

    return start
