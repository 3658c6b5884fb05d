"""Several decoder replicas: cameras are split, never decoded twice, and taken over."""

from __future__ import annotations

from camsight.bus import Bus, subjects
from camsight.bus.leases import rendezvous_owner
from camsight.cameras import CameraConfig
from camsight.v1 import camera_pb2
from decoder_support import RunningDecoder, StartDecoder
from helpers import sample_video, wait_for

CAMERAS = [
    CameraConfig(
        id=f"cam{i}", source=str(sample_video("carphone_pristine.mp4")), pacing="realtime", loop=True, fps=2
    )
    for i in range(6)
]
ALL = {c.id for c in CAMERAS}


def split_ok(decoders: list[RunningDecoder], expected: set[str]) -> bool:
    """Every camera owned by exactly one replica (checked on every poll), and by the one
    rendezvous hashing picks among the live replicas.

    The replica ids are random, so a replica may by chance be picked for no
    camera (1 in 32 with 6 cameras and 2 replicas): owning nothing is then right.
    """
    owned = [d.service.owned() for d in decoders]
    for i, mine in enumerate(owned):
        for theirs in owned[i + 1 :]:
            assert not mine & theirs, f"cameras decoded twice: {sorted(mine & theirs)}"
    ids = [d.service.decoder_id for d in decoders]
    picked = [{c for c in expected if rendezvous_owner(c, ids) == i} for i in ids]
    return owned == picked


async def owners_in_status(bus: Bus) -> dict[str, str]:
    kv = await bus.kv(subjects.CAMERA_STATUS_BUCKET)
    owners = {}
    for camera in ALL:
        try:
            status = camera_pb2.CameraStatus.FromString((await kv.get(camera)).value or b"")
        except Exception:
            continue
        owners[camera] = status.decoder_id
    return owners


async def test_replicas_split_cameras_and_take_over_from_a_dead_one(
    bus: Bus, start_decoder: StartDecoder
) -> None:
    a = await start_decoder(CAMERAS)
    await wait_for(lambda: a.service.owned() == ALL, 10, "first replica owning every camera")
    b = await start_decoder()
    await wait_for(lambda: split_ok([a, b], ALL), 10, "cameras split over two replicas")

    async def status_matches() -> bool:
        owners = await owners_in_status(bus)
        expected = {c: a.service.decoder_id for c in a.service.owned()}
        expected |= {c: b.service.decoder_id for c in b.service.owned()}
        return owners == expected

    await wait_for(status_matches, 10, "status naming each camera's replica")

    # Kill b: no goodbye, its leases expire (ttl 1.5 s) and a takes its cameras.
    await b.kill()
    await wait_for(lambda: split_ok([a], ALL), 10, "takeover of the dead replica's cameras")

    # A third replica joins, then leaves gracefully: it hands its cameras back at once.
    c = await start_decoder()
    await wait_for(lambda: split_ok([a, c], ALL), 10, "cameras split with the new replica")
    await c.stop()
    await wait_for(lambda: split_ok([a], ALL), 10, "handover from the stopped replica")
