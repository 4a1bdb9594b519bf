package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/meshca/meshca/internal/admintoken"
)

// defaultAdminTokenFile is where serve writes the loopback admin APIs' token unless adminTokenFile says
// otherwise (dev mode: DIR/admin-token). The manifests mount an emptyDir on its directory.
const defaultAdminTokenFile = "/var/run/meshca/admin-token"

// devAdminTokenFile is the token file of 'serve --dev DIR'.
func devAdminTokenFile(dir string) string { return filepath.Join(dir, "admin-token") }

// loopbackAdmin returns the token the loopback admin APIs (crl.admin.addr, rotation.adminAddr) require: made
// and written to adminTokenFile the first time a listener asks, the same for both after.
func (a *app) loopbackAdmin(cfg *Config, log *slog.Logger) (string, error) {
	if a.adminToken != "" {
		return a.adminToken, nil
	}
	path := cfg.AdminTokenFile
	if path == "" {
		path = defaultAdminTokenFile
	}
	tok, err := admintoken.Generate()
	if err != nil {
		return "", err
	}
	if err := admintoken.Write(path, tok); err != nil {
		return "", fmt.Errorf("adminTokenFile: writing the admin token: %w (set adminTokenFile to a file in a "+
			"directory meshca may write, such as an emptyDir volume)", err)
	}
	log.Info("admin token written; the loopback admin APIs require it", "adminTokenFile", path)
	a.adminToken = tok
	return tok, nil
}

// requireAdminToken wraps h, the loopback listener of api, so that only callers with the admin token reach it.
func requireAdminToken(api, tok string, h http.Handler, log *slog.Logger) http.Handler {
	return admintoken.Require(api, tok, h, log, nil)
}

// adminTokenFlag is --admin-token-file of the admin API clients.
type adminTokenFlag struct{ file string }

func (f *adminTokenFlag) flags(cmd *cobra.Command, persistent bool) {
	fl := cmd.Flags()
	if persistent {
		fl = cmd.PersistentFlags()
	}
	fl.StringVar(&f.file, "admin-token-file", defaultAdminTokenFile, "the loopback admin API's token, which "+
		"meshca writes at start (adminTokenFile; 'serve --dev DIR' writes DIR/admin-token)")
}

// token reads the token for a call to a loopback admin API.
func (f *adminTokenFlag) token() (string, error) {
	tok, err := admintoken.Read(f.file)
	if err != nil {
		return "", fmt.Errorf("--admin-token-file: %w (meshca writes its admin token there at start: run this "+
			"where meshca runs, e.g. with kubectl exec, or point --admin-token-file at its adminTokenFile)", err)
	}
	return tok, nil
}
