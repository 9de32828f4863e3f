"""The therapist's console: one local web page next to the patient (docs/live.md).

:mod:`exo.console.state` is the pure core (what the page gets: ring buffers of the knee angle, its
target, the assistance torque and the user's own effort; the safety state; the session timer; the
user's progress across sessions; the last STOP press). :mod:`exo.console.app` is the web application
(Starlette, served by uvicorn) with its token check; ``static/`` holds the page and the vendored
charting library (uPlot, ``scripts/vendor_web.sh``). The ROS side is :mod:`exo.nodes.console`.
"""
