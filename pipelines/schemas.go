package pipelines

import (
	"fmt"
	"os"
	"strings"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/internal/config"
)

// schemaRegistry builds the client of contracts.schema_registry, or returns nil when no url
// is configured. Nothing is contacted: ids are looked up as frames carry them.
func schemaRegistry(cfg *config.Config) (*contract.SchemaRegistry, config.Errors) {
	const path = "contracts.schema_registry"
	rc := cfg.Contracts.SchemaRegistry
	if rc.URL == "" {
		return nil, nil
	}
	fail := func(at, format string, args ...any) (*contract.SchemaRegistry, config.Errors) {
		return nil, config.Errors{{Pos: cfg.Pos(at), Msg: path + ": " + fmt.Sprintf(format, args...)}}
	}
	password := rc.Password
	if rc.PasswordFile != "" {
		b, err := os.ReadFile(rc.PasswordFile)
		if err != nil {
			return fail(path+".password_file", "read password_file: %v", err)
		}
		if password = strings.TrimRight(string(b), "\r\n"); password == "" {
			return fail(path+".password_file", "password_file %s is empty", rc.PasswordFile)
		}
	}
	tlsCfg, err := rc.TLS.ClientConfig()
	if err != nil {
		return fail(path+".tls", "%v", err)
	}
	reg, err := contract.NewSchemaRegistry(contract.SchemaRegistryConfig{URL: rc.URL, Username: rc.Username, Password: password, TLS: tlsCfg})
	if err != nil {
		return fail(path+".url", "%v", err)
	}
	return reg, nil
}

// schemasFor returns the schema-id policy of pipeline pc: its contract.schema_ids and the
// registry, if any. nil (no check) unless the pipeline reads Confluent frames.
func schemasFor(pc *config.Pipeline, enc contract.Encoding, reg *contract.SchemaRegistry) *contract.Schemas {
	if enc != contract.Confluent {
		return nil
	}
	ids := make([]uint32, 0, len(pc.Contract.SchemaIDs))
	for _, id := range pc.Contract.SchemaIDs {
		ids = append(ids, uint32(id)) // range checked by config
	}
	return contract.NewSchemas(ids, reg)
}

// NewDecoder returns a decoder of ct for the pipeline's encoding, checking Confluent frames
// against the pipeline's schema-id policy.
func (cp *CompiledPipeline) NewDecoder(ct *contract.Contract) *contract.Decoder {
	return ct.NewDecoder(cp.Encoding).CheckSchemas(cp.SchemaIDs)
}
