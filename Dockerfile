# Build: docker build -t switchyard --build-arg VERSION=$(git describe --tags --always --dirty) --build-arg COMMIT=$(git rev-parse HEAD) .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Stamped into `switchyard version` and switchyard_build_info; docker-compose.yml passes them
# (docker build --build-arg VERSION=$(git describe --tags --always --dirty) --build-arg COMMIT=$(git rev-parse HEAD)).
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath \
    -ldflags "-X github.com/switchyard-dev/switchyard/internal/app.Version=${VERSION} -X github.com/switchyard-dev/switchyard/internal/app.Commit=${COMMIT}" \
    -o /out/switchyard ./cmd/switchyard

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/switchyard /usr/local/bin/switchyard
COPY contracts /etc/switchyard/contracts
COPY configs /etc/switchyard/configs
WORKDIR /etc/switchyard
EXPOSE 9464
ENTRYPOINT ["switchyard"]
CMD ["run", "--config", "/etc/switchyard/configs/compose"]
