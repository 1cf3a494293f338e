package config

// Exports for the tests in package config_test, which import switchyard/sinks/all to load
// configurations with sinks (the sink packages import this package, so those tests cannot
// live in it).

type StructSpec = structSpec

var (
	RootSpec = rootSpec
	Expand   = expand
)

const RedactedText = redacted

// ParseWithEnv loads one in-memory file with env as the environment.
func ParseWithEnv(name string, data []byte, env func(string) (string, bool)) (*Config, error) {
	return load([]source{{name, data}}, name, env)
}
