package config

import (
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
)

// checker runs the semantic checks that need nothing but the configuration itself.
type checker struct {
	cfg  *Config
	bad  map[string]bool // paths that failed to decode
	errs Errors
}

// check returns every semantic problem in a decoded configuration: names that must be unique
// or must refer to something, sections that exclude each other, and contracts that leave a
// source topic without a message type. Checks whose subject failed to decode (bad holds the
// paths of such values) are skipped, since their values are not what was written.
func check(cfg *Config, bad map[string]bool) Errors {
	c := &checker{cfg: cfg, bad: bad}
	c.tls("kafka.tls", cfg.Kafka.TLS)
	c.sasl(cfg.Kafka.SASL)
	c.schemaRegistry(cfg.Contracts.SchemaRegistry)
	first := map[string]string{} // pipeline name -> path of its first definition
	for i := range cfg.Pipelines {
		p := &cfg.Pipelines[i]
		if p.Name != "" {
			if prev, ok := first[p.Name]; ok {
				c.errorf(p.Path+".name", "duplicate pipeline name %q (first defined at %s)", p.Name, cfg.Pos(prev+".name"))
			} else {
				first[p.Name] = p.Path
			}
		}
		c.pipeline(p)
	}
	return c.errs
}

// broken reports whether the value at path, or anything under it, failed to decode.
func (c *checker) broken(path string) bool {
	for p := range c.bad {
		if p == path || strings.HasPrefix(p, path+".") || strings.HasPrefix(p, path+"[") {
			return true
		}
	}
	return false
}

func (c *checker) errorf(path, format string, args ...any) {
	c.errs = append(c.errs, Error{Pos: c.cfg.Pos(path), Msg: fmt.Sprintf(format, args...)})
}

// pipeline checks one pipeline; every message starts by naming it.
func (c *checker) pipeline(p *Pipeline) {
	label := fmt.Sprintf("pipeline %q: ", p.Name)
	if p.Name == "" {
		label = p.Path + ": "
	}
	pe := func(path, format string, args ...any) { c.errorf(p.Path+path, label+format, args...) }

	sinks := map[string]*Sink{}
	var names []string
	for i := range p.Sinks {
		s := &p.Sinks[i]
		sp := fmt.Sprintf(".sinks[%d]", i)
		if s.Name != "" {
			if _, dup := sinks[s.Name]; dup {
				pe(sp+".name", "duplicate sink name %q", s.Name)
			} else {
				sinks[s.Name] = s
				names = append(names, s.Name)
			}
		}
		secs := s.sections()
		if len(secs) != 1 {
			what := "none"
			if len(secs) > 1 {
				var set []string
				for _, sec := range secs {
					set = append(set, sec.kind.Name)
				}
				what = strings.Join(set, " and ")
			}
			pe(sp, "sink %q must set exactly one of %s (it sets %s)", s.Name, strings.Join(SinkKinds(), ", "), what)
		}
		for _, sec := range secs {
			kp := sp + "." + sec.kind.Name
			c.tlsIn(p.Path+kp, sec.opts)
			if sec.kind.Check == nil || c.broken(p.Path+kp) {
				continue
			}
			for _, msg := range sec.kind.Check(sec.opts, p) {
				pe(kp, "sink %q: %s", s.Name, msg)
			}
		}
		c.retry(p.Path+sp+".retry", label+fmt.Sprintf("sink %q: ", s.Name), s.Retry)
	}

	for i, r := range p.Routes {
		rp := fmt.Sprintf(".routes[%d]", i)
		route := fmt.Sprintf("route %d", i+1)
		if r.Name != "" {
			route = fmt.Sprintf("route %q", r.Name)
		}
		if r.Sink == "" || c.broken(p.Path+rp) {
			continue // already reported
		}
		s, ok := sinks[r.Sink]
		switch {
		case !ok:
			pe(rp+".sink", "%s names sink %q but no sink has that name%s", route, r.Sink, didYouMean(r.Sink, names))
		case r.Topic != "" && len(s.sections()) == 1 && s.sections()[0].kind.Topic == nil:
			pe(rp+".topic", "%s sets topic but sink %q is a %s sink; only %s sinks take a topic", route, r.Sink, s.sections()[0].kind.Name, strings.Join(topicKinds(), " and "))
		case r.Topic == "":
			for _, sec := range s.sections() {
				if sec.kind.Topic != nil && sec.kind.Topic(sec.opts) == "" {
					pe(rp, "%s sends to %s sink %q, which has no topic; set topic on the route or the sink", route, sec.kind.Name, r.Sink)
				}
			}
		}
	}

	if t := p.DeadLetter.Topic; t != "" && slices.Contains(p.Source.Topics, t) {
		pe(".dead_letter.topic", "dead_letter.topic %q is also a source topic", t)
	}
	if b := p.DeadLetter.Breaker; b.Enabled {
		bp := ".dead_letter.breaker"
		if b.Window <= 0 && !c.broken(p.Path+bp+".window") {
			pe(bp+".window", "dead_letter.breaker.window must be positive (or set enabled: false)")
		}
		if b.Cooldown <= 0 && !c.broken(p.Path+bp+".cooldown") {
			pe(bp+".cooldown", "dead_letter.breaker.cooldown must be positive (or set enabled: false)")
		}
		if b.MaxRatio <= 0 && !c.broken(p.Path+bp+".max_ratio") {
			pe(bp+".max_ratio", "dead_letter.breaker.max_ratio must be above 0 (or set enabled: false)")
		}
	}

	ct := p.Contract
	if _, written := c.cfg.Positions[p.Path+".contract"]; !written || c.broken(p.Path+".contract") || c.broken(p.Path+".source.topics") {
		return // already reported as missing or undecodable
	}
	switch {
	case ct.Message == "" && len(ct.Topics) == 0 && ct.Header.Name == "":
		pe(".contract", "contract needs message, topics or header to say which message type records hold")
	case ct.Message == "" && ct.Header.Name == "":
		for i, t := range p.Source.Topics {
			if _, ok := ct.Topics[t]; !ok {
				pe(fmt.Sprintf(".source.topics[%d]", i), "source topic %q has no message type; add it to contract.topics or set contract.message or contract.header", t)
			}
		}
	}
	for _, t := range sortedKeys(ct.Topics) {
		if len(p.Source.Topics) > 0 && !slices.Contains(p.Source.Topics, t) {
			pe(fmt.Sprintf(".contract.topics[%q]", t), "contract.topics names topic %q, which is not a source topic%s", t, didYouMean(t, p.Source.Topics))
		}
	}
	switch {
	case ct.Header.Name != "" && len(ct.Header.Values) == 0:
		pe(".contract.header", "contract.header.name is set but contract.header.values is empty")
	case ct.Header.Name == "" && len(ct.Header.Values) > 0:
		pe(".contract.header", "contract.header.values is set but contract.header.name is empty")
	}
	c.schemaIDs(p, pe)

}

// schemaIDs checks contract.schema_ids: Confluent encoding, ids that fit the frame's 4
// bytes, no repeats.
func (c *checker) schemaIDs(p *Pipeline, pe func(path, format string, args ...any)) {
	ids := p.Contract.SchemaIDs
	if len(ids) == 0 || c.broken(p.Path+".contract.schema_ids") {
		return
	}
	if enc := p.Contract.Encoding; enc != "confluent" && !c.broken(p.Path+".contract.encoding") {
		pe(".contract.schema_ids", "contract.schema_ids is set but contract.encoding is %s; schema ids exist only in Confluent frames", enc)
		return
	}
	seen := map[int]int{}
	for i, id := range ids {
		ip := fmt.Sprintf(".contract.schema_ids[%d]", i)
		if id > 0xffffffff {
			pe(ip, "schema id %d does not fit the 4 bytes of a Confluent frame", id)
		}
		if j, dup := seen[id]; dup {
			pe(ip, "schema id %d is listed twice (first as schema_ids[%d])", id, j)
		} else {
			seen[id] = i
		}
	}
}

// schemaRegistry checks that a registry has a usable URL and coherent credentials.
// (password with password_file is reported by the decoder.)
func (c *checker) schemaRegistry(r SchemaRegistry) {
	const path = "contracts.schema_registry"
	if c.broken(path + ".url") {
		return
	}
	if r.URL == "" {
		if r.Username != "" || r.Password != "" || r.PasswordFile != "" || r.TLS != (TLS{}) {
			c.errorf(path, "%s: credentials or tls are given but url is empty", path)
		}
		return
	}
	u, err := url.Parse(r.URL)
	switch {
	case err != nil:
		c.errorf(path+".url", "%s.url: %v", path, err)
		return
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		c.errorf(path+".url", "%s.url %q: want http://host:port or https://host:port", path, r.URL)
		return
	}
	if !c.broken(path+".username") && !c.broken(path+".password") && !c.broken(path+".password_file") {
		switch {
		case r.Username == "" && (r.Password != "" || r.PasswordFile != ""):
			c.errorf(path, "%s: a password is given but username is empty", path)
		case r.Username != "" && r.Password == "" && r.PasswordFile == "":
			c.errorf(path, "%s: username %q needs password or password_file", path, r.Username)
		}
	}
	if r.TLS.Enabled && u.Scheme != "https" && !c.broken(path+".tls") {
		c.errorf(path+".tls", "%s.tls: tls is enabled but url %q is not https", path, r.URL)
	}
	c.tls(path+".tls", r.TLS)
}

// tlsIn checks every TLS section in the options of a sink kind (opts, a pointer to the
// kind's struct, written at path), so that each kind with a tls key gets the same checks.
func (c *checker) tlsIn(path string, opts any) {
	v := reflect.ValueOf(opts)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return
	}
	var walk func(path string, v reflect.Value, s *structSpec)
	walk = func(path string, v reflect.Value, s *structSpec) {
		for _, f := range s.Fields {
			switch {
			case f.Kind == kindStruct && f.Type == tlsType:
				c.tls(join(path, f.Name), v.Field(f.Index).Interface().(TLS))
			case f.Kind == kindStruct:
				walk(join(path, f.Name), v.Field(f.Index), f.Struct)
			}
		}
	}
	walk(path, v.Elem(), specOf(v.Elem().Type()))
}

var tlsType = reflect.TypeFor[TLS]()

// tls checks that the TLS files make sense together.
func (c *checker) tls(path string, t TLS) {
	if c.broken(path) {
		return
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		c.errorf(path, "%s: cert_file and key_file must be set together", path)
	}
	if !t.Enabled && (t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.InsecureSkipVerify) {
		c.errorf(path, "%s: TLS settings are given but enabled is false", path)
	}
}

// sasl checks that a SASL mechanism has credentials, and credentials a mechanism.
func (c *checker) sasl(s SASL) {
	const path = "kafka.sasl"
	if c.broken(path) {
		return
	}
	switch {
	case s.Mechanism == "" && (s.Username != "" || s.Password != "" || s.PasswordFile != ""):
		c.errorf(path, "%s: credentials are given but mechanism is empty", path)
	case s.Mechanism == "":
	case s.Username == "":
		c.errorf(path, "%s: mechanism %s needs username", path, s.Mechanism)
	case s.Password == "" && s.PasswordFile == "":
		c.errorf(path, "%s: mechanism %s needs password or password_file", path, s.Mechanism)
	}
}

// retry checks that the backoff bounds are ordered.
func (c *checker) retry(path, label string, r Retry) {
	if c.broken(path) {
		return
	}
	if r.InitialBackoff > r.MaxBackoff {
		c.errorf(path, "%sretry.initial_backoff %s is longer than retry.max_backoff %s", label, r.InitialBackoff, r.MaxBackoff)
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
