"""The behavior service: detections become tracks, tracks become events.

The pure part (reorder buffer, tracker, rules, event lifecycle) lives in
:mod:`camsight.behavior.engine` and never touches NATS, so it is tested and
benchmarked exactly on synthetic scenes; :mod:`camsight.behavior.service`
wires it to the bus (detections in, events and snapshots out).
"""
