# The one image every Crowdpack process runs from (k8s/ picks the process with args).
# Build tools (maturin, grpcio-tools) stay in the build stages; their pins are read from pyproject.toml.
FROM rust:1.95-slim-bookworm AS engine
RUN pip3 --version >/dev/null 2>&1 || (apt-get update && apt-get install -y --no-install-recommends python3 python3-pip python3-venv && rm -rf /var/lib/apt/lists/*)
COPY pyproject.toml /src/
RUN python3 -m venv /opt/maturin && /opt/maturin/bin/pip install "$(grep -o '"maturin==[^"]*"' /src/pyproject.toml | tr -d '"')"
WORKDIR /src/segment_engine
COPY segment_engine/ .
RUN /opt/maturin/bin/maturin build --release --interpreter python3.11 -o /wheels || \
    /opt/maturin/bin/maturin build --release -o /wheels

FROM python:3.11-slim-bookworm AS protos
ENV PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml ./
COPY protos/ protos/
RUN pip install "$(grep -o '"grpcio-tools==[^"]*"' pyproject.toml | tr -d '"')" \
                "$(grep -o '"googleapis-common-protos==[^"]*"' pyproject.toml | tr -d '"')" && mkdir gen && \
    python -m grpc_tools.protoc -Iprotos -I"$(python -c 'import site; print(site.getsitepackages()[0])')" \
        --python_out=gen --grpc_python_out=gen $(find protos -name '*.proto')

FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml ./
COPY services/ services/
COPY gateway/ gateway/
RUN pip install .
COPY --from=protos /src/gen/ gen/
RUN echo /app/gen > "$(python -c 'import site; print(site.getsitepackages()[0])')/crowdpack_gen.pth"
COPY --from=engine /wheels/ /wheels/
RUN pip install /wheels/*.whl && rm -rf /wheels
RUN useradd --uid 10001 --create-home crowdpack && mkdir -p /var/lib/crowdpack && chown crowdpack /var/lib/crowdpack
USER 10001
EXPOSE 8080 50051 50052 50053
CMD ["python", "-m", "gateway"]
