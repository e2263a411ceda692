# The API function as a container image, from the artifact `make package` built and checked:
#   make package && docker build --platform linux/arm64 -f deploy/api.Dockerfile -t leaderboard-api .
# (No Docker engine on the build machines: this file is kept minimal and derived from build/api.)
FROM public.ecr.aws/lambda/python:3.13
COPY build/api/ ${LAMBDA_TASK_ROOT}/
CMD ["api_lambda.handler.lambda_handler"]
