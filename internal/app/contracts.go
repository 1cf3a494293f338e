package app

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/compat"
	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/pipelines"
	"github.com/switchyard-dev/switchyard/sinks"
	"github.com/switchyard-dev/switchyard/sinks/registry"
)

const contractsUsage = `Usage: switchyard contracts check --config PATH --against REF [--format text|github]

Compares the configuration's contracts with REF and reports every wire- or JSON-breaking
change at its .proto file:line:col, and, for each pipeline using a changed message, what each
sink would do (its DDL, or why it would refuse to start), computed offline from the contracts.

REF is a directory of .proto files, a buf build image (binary FileDescriptorSet), or a git
revision of the repository holding the contracts (e.g. origin/main).

Exit codes: 0 compatible, 1 breaking (or a sink would refuse to start), 2 usage or load error.
`

// Exit codes of switchyard contracts check.
const (
	checkCompatible = 0
	checkBreaking   = 1
	checkUsage      = 2
)

func cmdContracts(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, contractsUsage)
		return checkUsage
	}
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, contractsUsage)
		return 0
	case "check":
		return cmdContractsCheck(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "switchyard contracts: unknown subcommand %q\n\n%s", args[0], contractsUsage)
	return checkUsage
}

func cmdContractsCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("contracts check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, contractsUsage+"\nFlags:\n"); fs.PrintDefaults() }
	path := fs.String("config", "", "configuration `path`: a YAML file or a directory of them")
	against := fs.String("against", "", "the previous contracts: a `directory`, a buf build image, or a git revision")
	format := fs.String("format", "text", "output format: text, or github (GitHub Actions annotations)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return checkUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "switchyard contracts check: unexpected argument %q\n", fs.Arg(0))
		return checkUsage
	}
	if *path == "" || *against == "" {
		fmt.Fprintln(stderr, "switchyard contracts check: --config and --against are required")
		return checkUsage
	}
	if *format != "text" && *format != "github" {
		fmt.Fprintf(stderr, "switchyard contracts check: --format must be text or github, not %q\n", *format)
		return checkUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		printErrors(stderr, err)
		return checkUsage
	}
	cur, ok := compile(cfg, stderr)
	if !ok {
		return checkUsage
	}
	oldPath, cleanup, err := resolveAgainst(ctx, *against, cfg.Contracts.Path)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard contracts check: --against %s: %v\n", *against, err)
		return checkUsage
	}
	defer cleanup()
	oldReg, err := contract.Load(oldPath)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard contracts check: load the contracts of %s: %v\n", *against, err)
		return checkUsage
	}

	// The messages pipelines use first, so that their changes are reported under them, then
	// every other top-level message of the previous version.
	users := map[string][]*pipelines.CompiledPipeline{}
	var names []string
	for _, p := range cur.Pipelines {
		for _, m := range pipelineMessages(p.Config) {
			if !slices.Contains(names, m) {
				names = append(names, m)
			}
			users[m] = append(users[m], p)
		}
	}
	for _, n := range oldReg.Names() {
		if !strings.Contains(strings.TrimPrefix(n, packageOf(oldReg, n)+"."), ".") && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	changes := compat.Compare(oldReg.Files(), cur.Registry.Files(), names)

	// The previous version of every sink's schema, from the same configuration compiled
	// against the previous contracts.
	oldCfg := *cfg
	oldCfg.Contracts.Path = oldPath
	var prevNote string
	prev := map[string]map[string]protoreflect.MessageDescriptor{}
	if old, err := pipelines.Compile(&oldCfg, oldReg); err != nil {
		prevNote = fmt.Sprintf("the configuration does not compile against the previous contracts (%s), so each sink's plan is its CREATE TABLE", oneLineErr(err))
	} else {
		for _, p := range old.Pipelines {
			prev[p.Config.Name] = p.Schemas
		}
	}

	base := ""
	if st, err := os.Stat(cfg.Contracts.Path); err == nil && st.IsDir() {
		base = cfg.Contracts.Path
	}
	out := &checkOutput{w: stdout, github: *format == "github", base: base}
	code := checkCompatible
	byMessage := map[string][]compat.Change{}
	var order []string
	for _, c := range changes {
		if _, ok := byMessage[c.Message]; !ok {
			order = append(order, c.Message)
		}
		byMessage[c.Message] = append(byMessage[c.Message], c)
	}
	sort.SliceStable(order, func(i, j int) bool { return slices.Index(names, order[i]) < slices.Index(names, order[j]) })
	breaking := 0
	for _, m := range order {
		cs := byMessage[m]
		nb := 0
		for _, c := range cs {
			if c.Breaking() {
				nb++
			}
		}
		breaking += nb
		out.heading(fmt.Sprintf("message %s: %d change(s), %d breaking (%s)", m, len(cs), nb, compat.Summary(cs)))
		for _, c := range cs {
			out.change(c)
		}
		for _, p := range users[m] {
			if refused := out.sinkPlans(ctx, cfg, p, prev[p.Config.Name], prevNote, cs[0]); refused {
				code = checkBreaking
			}
		}
		if out.github {
			out.line("::endgroup::")
		}
	}
	if breaking > 0 {
		code = checkBreaking
	}
	switch {
	case len(changes) == 0:
		out.line(fmt.Sprintf("contracts are unchanged against %s", *against))
	case code == checkCompatible:
		out.line(fmt.Sprintf("compatible with %s", *against))
	default:
		out.line(fmt.Sprintf("not compatible with %s: %d breaking change(s)", *against, breaking))
	}
	return code
}

func oneLineErr(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

func packageOf(reg *contract.Registry, name string) string {
	d, err := reg.Files().FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		return ""
	}
	return string(d.ParentFile().Package())
}

// pipelineMessages are the contract messages a pipeline decodes.
func pipelineMessages(p *config.Pipeline) []string {
	var out []string
	add := func(m string) {
		if m != "" && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	add(p.Contract.Message)
	for _, k := range sortedKeys(p.Contract.Topics) {
		add(p.Contract.Topics[k])
	}
	for _, k := range sortedKeys(p.Contract.Header.Values) {
		add(p.Contract.Header.Values[k])
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// checkOutput prints the report as text or as GitHub Actions workflow commands.
type checkOutput struct {
	w      io.Writer
	github bool
	base   string // the contracts directory, joined to file paths; "" for a descriptor set
}

func (o *checkOutput) file(c compat.Change) string {
	if o.base == "" {
		return c.File
	}
	return filepath.ToSlash(filepath.Join(o.base, filepath.FromSlash(c.File)))
}

func (o *checkOutput) line(s string) { fmt.Fprintln(o.w, s) }

func (o *checkOutput) heading(s string) {
	if o.github {
		fmt.Fprintln(o.w, "::group::"+s)
		return
	}
	fmt.Fprintln(o.w, s)
}

func (o *checkOutput) change(c compat.Change) {
	what := "compatible"
	switch {
	case c.Wire && c.JSON:
		what = "breaks wire and JSON"
	case c.Wire:
		what = "breaks wire"
	case c.JSON:
		what = "breaks JSON"
	}
	msg := fmt.Sprintf("%s (%s): %s", c.Kind, what, c.Detail)
	if o.github {
		level := "notice"
		if c.Breaking() {
			level = "error"
		}
		fmt.Fprintf(o.w, "::%s file=%s,line=%d,col=%d,title=%s::%s\n", level, ghProperty(o.file(c)), c.Line, c.Col, ghProperty("contract "+string(c.Kind)), ghData(msg))
		return
	}
	fmt.Fprintf(o.w, "  %s:%d:%d: %s\n", o.file(c), c.Line, c.Col, msg)
}

// sinkPlans prints what each sink of p would do with the changed contract, and reports
// whether one would refuse to start. at is a change of the message, where refusals are
// annotated.
func (o *checkOutput) sinkPlans(ctx context.Context, cfg *config.Config, p *pipelines.CompiledPipeline, prev map[string]protoreflect.MessageDescriptor, prevNote string, at compat.Change) bool {
	refused := false
	for i := range p.Config.Sinks {
		sc := &p.Config.Sinks[i]
		head := fmt.Sprintf("  pipeline %q sink %q (%s)", p.Config.Name, sc.Name, sc.Kind)
		if registry.Schemaless(sc) {
			o.line(head + ": no schema to change")
			continue
		}
		s, err := pipelines.NewSink(ctx, sc, pipelines.SinkDeps{
			Deps:  sinks.Deps{Pipeline: p.Config.Name, Sink: sc.Name, Schema: p.Schemas[sc.Name]},
			Kafka: cfg.Kafka,
			Input: p.Encoding,
		})
		if err != nil {
			refused = true
			o.refuse(head, fmt.Sprintf("pipeline %q sink %q would refuse to start: %v", p.Config.Name, sc.Name, err), at)
			continue
		}
		pl, ok := s.(sinks.OfflinePlanner)
		if !ok {
			_ = s.Close(ctx)
			o.line(head + ": no schema to change")
			continue
		}
		var previous protoreflect.MessageDescriptor
		if prev != nil {
			previous = prev[sc.Name]
		}
		assumption, stmts, err := pl.PlanOffline(previous)
		_ = s.Close(ctx)
		if previous == nil && prevNote != "" {
			assumption += "; " + prevNote
		}
		if err != nil {
			refused = true
			o.refuse(head+", "+assumption, fmt.Sprintf("pipeline %q sink %q would refuse to start: %v", p.Config.Name, sc.Name, err), at)
			continue
		}
		o.line(head + ", " + assumption + ":")
		if len(stmts) == 0 {
			o.line("    -- the table fits: nothing to change")
		}
		for _, st := range stmts {
			o.line("    " + strings.ReplaceAll(st, "\n", "\n    ") + ";")
		}
	}
	return refused
}

func (o *checkOutput) refuse(head, msg string, at compat.Change) {
	if o.github {
		fmt.Fprintf(o.w, "::error file=%s,line=%d,col=%d,title=%s::%s\n", ghProperty(o.file(at)), at.Line, at.Col, ghProperty("sink would refuse to start"), ghData(msg))
		return
	}
	o.line(head + ":")
	_, reason, _ := strings.Cut(msg, " would refuse to start: ")
	o.line("    would refuse to start: " + strings.ReplaceAll(reason, "\n", "\n    "))
}

// ghData and ghProperty escape a workflow command's message and property values.
func ghData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

func ghProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}

// resolveAgainst returns the path of the previous contracts: ref itself when it is a
// directory or a file, else the contracts path (cur) as of git revision ref, extracted into
// a temporary directory that cleanup removes.
func resolveAgainst(ctx context.Context, ref, cur string) (string, func(), error) {
	nop := func() {}
	if _, err := os.Stat(ref); err == nil {
		return ref, nop, nil
	}
	abs, err := filepath.Abs(cur)
	if err != nil {
		return "", nop, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", nop, err
	}
	dir := abs
	if !st.IsDir() {
		dir = filepath.Dir(abs)
	}
	git := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("not a directory, a file, nor a git revision of the repository holding %s: git %s: %v: %s", cur, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return out, nil
	}
	top, err := git("rev-parse", "--show-toplevel")
	if err != nil {
		return "", nop, err
	}
	if _, err := git("rev-parse", "--verify", "--quiet", ref+"^{commit}"); err != nil {
		return "", nop, err
	}
	root := strings.TrimSpace(string(top))
	if r, err := filepath.EvalSymlinks(root); err == nil {
		root = r
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil || strings.HasPrefix(rel, "..") {
		return "", nop, fmt.Errorf("%s is not inside the git repository %s", cur, root)
	}
	rel = filepath.ToSlash(rel)
	dir = root // pathspecs below are relative to the top of the work tree
	tmp, err := os.MkdirTemp("", "switchyard-against-")
	if err != nil {
		return "", nop, err
	}
	cleanup := func() { os.RemoveAll(tmp) }
	if !st.IsDir() {
		raw, err := git("show", ref+":"+rel)
		if err != nil {
			cleanup()
			return "", nop, err
		}
		p := filepath.Join(tmp, filepath.Base(abs))
		if err := os.WriteFile(p, raw, 0o644); err != nil {
			cleanup()
			return "", nop, err
		}
		return p, cleanup, nil
	}
	raw, err := git("archive", "--format=tar", ref, "--", rel)
	if err != nil {
		cleanup()
		return "", nop, err
	}
	if err := untar(bytes.NewReader(raw), tmp); err != nil {
		cleanup()
		return "", nop, fmt.Errorf("extract %s at %s: %w", rel, ref, err)
	}
	out := filepath.Join(tmp, filepath.FromSlash(rel))
	if _, err := os.Stat(out); err != nil {
		cleanup()
		return "", nop, fmt.Errorf("%s does not exist at %s", rel, ref)
	}
	return out, cleanup, nil
}

// untar extracts the regular files and directories of a tar stream under dir.
func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.FromSlash(h.Name)
		if !filepath.IsLocal(name) {
			return fmt.Errorf("unsafe path %q in archive", h.Name)
		}
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.Create(p)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, tr); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
		}
	}
}
