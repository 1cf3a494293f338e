package contract_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/internal/buftool"
)

// TestLegacyOptionsProto_stays_out_of_contracts: the deprecated file is compiled in from
// contract/options only; in contracts/ buf lint would reject its unversioned package.
func TestLegacyOptionsProto_stays_out_of_contracts(t *testing.T) {
	if _, err := os.Stat(filepath.Join(contractsDir, contract.LegacyOptionsProto)); err == nil {
		t.Fatalf("contracts/%s is back: buf lint rejects its unversioned package; it lives only in contract/options", contract.LegacyOptionsProto)
	}
}

// legacyContract is a contract written before switchyard.v1, next to one that uses it.
var legacyContract = map[string]string{
	"shop/v1/signup.proto": `syntax = "proto3";
package shop.v1;
import "switchyard/options.proto";
message SignedUp {
  string email = 1 [(switchyard.field).pii = HASH];
}
`,
	"shop/v1/login.proto": `syntax = "proto3";
package shop.v1;
import "switchyard/v1/options.proto";
message LoggedIn {
  string email = 1 [(switchyard.v1.field).pii = PII_HASH];
}
`,
}

// TestLoad_serves_options_files_the_directory_lacks compiles a directory that imports both
// options files and holds neither: both resolve to the compiled-in copies, their extensions
// (57291, 57292) do not clash, and they declare no contracts.
func TestLoad_serves_options_files_the_directory_lacks(t *testing.T) {
	reg, err := contract.Load(writeTree(t, legacyContract))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(reg.Names(), ","); got != "shop.v1.LoggedIn,shop.v1.SignedUp" {
		t.Fatalf("Names = %s, want only the two contracts", got)
	}
	for _, name := range []string{"switchyard.field", "switchyard.v1.field"} {
		xt, err := reg.Types().FindExtensionByName(protoreflectName(name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := map[string]int32{"switchyard.field": 57291, "switchyard.v1.field": 57292}[name]
		if got := int32(xt.TypeDescriptor().Number()); got != want {
			t.Fatalf("%s is extension %d, want %d", name, got, want)
		}
	}
	if got := strings.Join(reg.LegacyOptionImports(), ","); got != "shop/v1/signup.proto" {
		t.Fatalf("LegacyOptionImports = %q, want shop/v1/signup.proto", got)
	}
	sd, err := reg.Files().FindFileByPath(contract.LegacyOptionsProto)
	if err != nil {
		t.Fatal(err)
	}
	if !sd.Options().(*descriptorpb.FileOptions).GetDeprecated() {
		t.Fatalf("%s is not marked deprecated", contract.LegacyOptionsProto)
	}
}

// TestLoad_descriptor_set_without_options_files loads a set built without the options files
// (like buf build --exclude-imports would) and gets them from the compiled-in copies.
func TestLoad_descriptor_set_without_options_files(t *testing.T) {
	reg, err := contract.Load(writeTree(t, legacyContract))
	if err != nil {
		t.Fatal(err)
	}
	var set descriptorpb.FileDescriptorSet
	for _, p := range []string{"shop/v1/signup.proto", "shop/v1/login.proto"} {
		fd, err := reg.Files().FindFileByPath(p)
		if err != nil {
			t.Fatal(err)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	raw, err := proto.Marshal(&set)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "set.binpb")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	reg2, err := contract.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg2.Lookup("shop.v1.SignedUp"); err != nil {
		t.Fatal(err)
	}
}

// TestBuf_lint_and_build_contracts runs the real buf CLI (installed by .ci/setup) over
// contracts/: `buf lint` must pass, and the image `buf build` writes must load.
func TestBuf_lint_and_build_contracts(t *testing.T) {
	buf, err := buftool.Path()
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(buf, args...)
		cmd.Dir = contractsDir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("buf %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("lint")
	image, err := filepath.Abs(filepath.Join(t.TempDir(), "image.binpb"))
	if err != nil {
		t.Fatal(err)
	}
	run("build", "-o", image)
	reg, err := contract.Load(image)
	if err != nil {
		t.Fatal(err)
	}
	c := lookup(t, reg, "auctions.v1.BidPlaced")
	opts := c.Descriptor().Fields().ByName("bidder_email").Options()
	raw, err := proto.Marshal(opts)
	if err != nil {
		t.Fatal(err)
	}
	// (switchyard.v1.field) = {pii: PII_HASH}: tag 57292 bytes, {1: 1}.
	if !bytes.Contains(raw, []byte{0xe2, 0xfc, 0x1b, 0x02, 0x08, 0x01}) {
		t.Fatalf("bidder_email's options in the buf image lack (switchyard.v1.field).pii = PII_HASH: % x", raw)
	}
}

func protoreflectName(s string) protoreflect.FullName { return protoreflect.FullName(s) }
