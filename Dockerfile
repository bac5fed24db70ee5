# Image for the Prefect worker: the project with its flows; talks to vLLM over HTTP.
FROM python:3.11-slim
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir -e '.[dask]'
ENV PARALLELNER_HOME=/data
CMD ["parallelner", "serve"]
