# Build: docker build -t switchyard .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/switchyard ./cmd/switchyard

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/switchyard /usr/local/bin/switchyard
COPY contracts /etc/switchyard/contracts
COPY configs /etc/switchyard/configs
WORKDIR /etc/switchyard
EXPOSE 9464
ENTRYPOINT ["switchyard"]
CMD ["run", "--config", "/etc/switchyard/configs/compose"]
