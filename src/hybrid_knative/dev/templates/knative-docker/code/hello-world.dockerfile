FROM docker.io/library/python:3.12-slim
WORKDIR /app
COPY . /app
ENV PORT=8080 PYTHONUNBUFFERED=1
CMD ["python3", "/app/app.py"]
