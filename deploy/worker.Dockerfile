# The refresh worker as a container image, from the artifact `make package` built and checked:
#   make package && docker build --platform linux/arm64 -f deploy/worker.Dockerfile -t leaderboard-worker .
# (No Docker engine on the build machines: this file is kept minimal and derived from build/worker.)
FROM public.ecr.aws/lambda/python:3.13
COPY build/worker/ ${LAMBDA_TASK_ROOT}/
CMD ["refresh_worker.handler.lambda_handler"]
