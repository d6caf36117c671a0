# The two commands of the README.
.PHONY: run test build lint

# Run the server on the embedded defaults (SQLite, local disk, outbox mail).
run:
	go run ./cmd/plaza serve

# Run every test with the race detector. Set PLAZA_TEST_POSTGRES_URL and
# PLAZA_TEST_REDIS_URL to run the same suites on PostgreSQL and Redis too.
test:
	go test -race -count=1 -timeout 20m ./...

build:
	go build -o plaza ./cmd/plaza

lint:
	gofmt -l $$(git ls-files '*.go')
	go vet ./...
	staticcheck ./...
