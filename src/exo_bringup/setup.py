"""colcon / ament_python build of exo_bringup (ROS 2 installs).

The pip install uses the top-level pyproject.toml instead; both install the same
``exo`` Python package. Node executables land in ``lib/exo_bringup`` so that
``ros2 run exo_bringup <node>`` finds them; launch/config/urdf go to
``share/exo_bringup``.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "exo_bringup"

# One console script per node; test/test_package.py checks this list against
# the node-graph spec (exo/graph.py).
NODE_EXECUTABLES = {
    "sim_bridge": "exo.nodes.sim_bridge:main",
    "controller": "exo.nodes.controller:main",
    "safety_monitor": "exo.nodes.safety_monitor:main",
    "recorder": "exo.nodes.recorder:main",
    "bag_player": "exo.nodes.bag_player:main",
    "actuator_driver": "exo.nodes.actuator_driver:main",
    "imu_driver": "exo.nodes.imu_driver:main",
    "emg_driver": "exo.nodes.emg_driver:main",
    "foot_pressure_driver": "exo.nodes.foot_pressure_driver:main",
    "intent_estimator": "exo.nodes.intent_estimator:main",
    "live_view": "exo.nodes.live_view:main",
    "console": "exo.nodes.console:main",
}

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["exo", "exo.*"]),
    # the console's page and its vendored charting library (scripts/vendor_web.sh)
    package_data={"exo.console": ["static/*.html", "static/*.js", "static/*.css", "static/vendor/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/config/foxglove", glob("config/foxglove/*.json")),
        (f"share/{PACKAGE}/urdf", glob("urdf/*")),
        (f"share/{PACKAGE}/models/intent/lstm-reduced", glob("models/intent/lstm-reduced/*")),
        # the committed SAC policies (the controller's default is one of them)
        *[(f"share/{PACKAGE}/{folder}", glob(f"{folder}/*")) for folder in sorted(glob("models/sac-*"))],
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="exo maintainers",
    description="exo knee-exoskeleton stack: nodes, launch files, configuration, digital twin",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [f"{name} = {target}" for name, target in NODE_EXECUTABLES.items()]
        + ["exo = exo.cli.main:main"],
    },
)
