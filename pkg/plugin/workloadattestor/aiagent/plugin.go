package aiagent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/spiffe/spire-plugin-sdk/pluginsdk"
	workloadattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/agent/workloadattestor/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// PluginName is the name under which the README's sample configuration loads
// the plugin. SPIRE uses the name of the WorkloadAttestor section as the
// selector type, so with this name the selectors read "aiagent:name:...".
const PluginName = "aiagent"

// Log field keys, constant so that log queries do not depend on messages.
const (
	logKeyPID    = "pid"
	logKeyPath   = "path"
	logKeyKeyID  = "key_id"
	logKeyError  = "error"
	logKeyReason = "reason"
)

// procRoot is where the kernel's process filesystem is mounted.
const procRoot = "/proc"

var _ pluginsdk.NeedsLogger = (*Plugin)(nil)

// Plugin is the agentid WorkloadAttestor. It turns a process's agent
// manifest, its detached signature and the process's executable into
// selectors; see the package documentation for what is read and the README
// for the selectors.
//
// Use New; a Plugin answers FailedPrecondition until Configure succeeds.
type Plugin struct {
	workloadattestorv1.UnsafeWorkloadAttestorServer
	configv1.UnsafeConfigServer

	mu     sync.RWMutex
	config *config

	log     hclog.Logger
	digests *digestCache

	// hooks for tests.
	hooks struct {
		// beforeRecheck runs after everything has been read and before the
		// second start time read.
		beforeRecheck func(pid int32)
	}
}

// New returns an unconfigured plugin.
func New() *Plugin {
	return &Plugin{
		log:     hclog.NewNullLogger(),
		digests: newDigestCache(),
	}
}

// SetLogger is called by the plugin framework with a logger wired to SPIRE's
// log. Warnings about manifests and signatures go there.
// It takes the lock because Attest may already be running.
func (p *Plugin) SetLogger(log hclog.Logger) {
	p.mu.Lock()
	p.log = log
	p.mu.Unlock()
}

// Configure builds the configuration from the plugin_data HCL and replaces
// the previous one atomically. An invalid configuration leaves the previous
// one in force and answers InvalidArgument.
func (p *Plugin) Configure(_ context.Context, req *configv1.ConfigureRequest) (*configv1.ConfigureResponse, error) {
	c, _, err := buildConfig(req.GetHclConfiguration())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	p.mu.Lock()
	p.config = c
	p.mu.Unlock()
	return &configv1.ConfigureResponse{}, nil
}

// Validate runs the same builder as Configure without applying the result,
// and returns its notes: the error when invalid, and a warning when no
// signing keys are configured.
func (p *Plugin) Validate(_ context.Context, req *configv1.ValidateRequest) (*configv1.ValidateResponse, error) {
	_, notes, err := buildConfig(req.GetHclConfiguration())
	return &configv1.ValidateResponse{Valid: err == nil, Notes: notes}, nil
}

func (p *Plugin) getConfig() (*config, hclog.Logger, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.config == nil {
		return nil, nil, status.Error(codes.FailedPrecondition, "aiagent: not configured")
	}
	return p.config, p.log, nil
}

// Attest returns the selectors of the process req.Pid.
//
// SPIRE drops all of an attestor's selectors when it answers an error, and
// the workload still gets other attestors' selectors. So Attest answers an
// error only when the plugin itself cannot work (not configured, /proc or
// the executable unreadable for a live process); everything the workload
// controls (no manifest, a broken or oversized one, a bad signature) and a
// process that exits or is replaced during attestation yield fewer or no
// selectors, with a warning in the log where an operator should look.
//
// Attest returns when ctx ends even if a read is stuck (a file system that
// does not answer): the work goes on in the background and its result is
// dropped, so one stuck file cannot hold SPIRE's attestation call.
func (p *Plugin) Attest(ctx context.Context, req *workloadattestorv1.AttestRequest) (*workloadattestorv1.AttestResponse, error) {
	c, log, err := p.getConfig()
	if err != nil {
		return nil, err
	}
	if req.GetPid() <= 0 {
		return nil, status.Errorf(codes.InvalidArgument, "aiagent: invalid pid %d", req.GetPid())
	}
	type result struct {
		selectors []string
		err       error
	}
	done := make(chan result, 1) // buffered: an abandoned attest does not block
	go func() {
		selectors, err := p.attest(ctx, c, log, req.GetPid())
		done <- result{selectors, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, r.err
		}
		return &workloadattestorv1.AttestResponse{SelectorValues: r.selectors}, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// attest does the work of Attest. It returns nil selectors for "no
// selectors" and a gRPC status error for "cannot attest".
func (p *Plugin) attest(ctx context.Context, c *config, log hclog.Logger, pid int32) ([]string, error) {
	procDir := procRoot + "/" + strconv.FormatInt(int64(pid), 10)
	log = log.With(logKeyPID, pid)

	before, err := readProcStat(procDir)
	if err != nil {
		return p.procError(log, "failed to read process status", err)
	}

	manifestPath, ok, err := p.manifestPath(c, procDir, log)
	if err != nil || !ok {
		return nil, err
	}

	root, err := os.OpenRoot(procDir + "/root")
	if err != nil {
		return p.procError(log, "failed to open process root", err)
	}
	defer root.Close()

	data, err := readInRoot(root, manifestPath, c.maxManifestSize)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		// No manifest (a path through a non-directory is missing too): not
		// an agent, or not one of ours.
		return nil, nil
	case errors.Is(err, errTooLarge):
		log.Warn("Ignoring oversized agent manifest", logKeyPath, "/"+manifestPath, logKeyError, err.Error())
		return nil, nil
	case err != nil:
		log.Warn("Ignoring unreadable agent manifest", logKeyPath, "/"+manifestPath, logKeyError, err.Error())
		return nil, nil
	}
	manifest, err := ParseManifest(data)
	if err != nil {
		log.Warn("Ignoring invalid agent manifest", logKeyPath, "/"+manifestPath, logKeyError, err.Error())
		return nil, nil
	}
	exeDigest, err := p.digests.digest(ctx, procDir+"/exe", c.maxExeSize)
	switch {
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return nil, status.FromContextError(err).Err()
	case errors.Is(err, errTooLarge):
		// The workload chose its binary: this costs only the selector.
		log.Warn("Not hashing the process executable; no exe-sha256 selector", logKeyReason, err.Error())
	case err != nil:
		return p.procError(log, "failed to digest process executable", err)
	}

	var signer string
	if manifest.Binding == nil {
		// v1 binds no code: its signature vouches for any process holding
		// a copy, so it earns nothing.
		if len(c.keys) > 0 {
			if _, err := readInRoot(root, manifestPath+SignatureSuffix, maxSignatureFileSize); err == nil {
				log.Warn("Agent manifest is "+APIVersionV1+", which binds no code; no signer selector (sign an "+APIVersionV2+" manifest)",
					logKeyPath, "/"+manifestPath)
			}
		}
	} else {
		// The manifest says what runs; a process running anything else
		// holds a copy of it, and gets none of its selectors.
		if err := checkBinding(procDir, root, manifest.Binding, exeDigest); errors.Is(err, errNoMatch) {
			log.Warn("Process does not run what its agent manifest binds; no selectors", logKeyPath, "/"+manifestPath, logKeyReason, err.Error())
			return nil, nil
		} else if err != nil {
			return p.procError(log, "failed to check the manifest's binding", err)
		}
		signer = p.signer(c, root, manifestPath, data, log)
	}

	if p.hooks.beforeRecheck != nil {
		p.hooks.beforeRecheck(pid)
	}
	after, err := readProcStat(procDir)
	if err == nil && after.startTime != before.startTime {
		err = errProcessGone
	}
	if err != nil {
		return p.procError(log, "failed to re-read process status", err)
	}

	sum := sha256.Sum256(data)
	selectors := make([]string, 0, 6+len(manifest.Tools))
	selectors = append(selectors,
		"name:"+manifest.Name,
		"version:"+manifest.Version,
		"model:"+manifest.Model.Provider+"/"+manifest.Model.Name,
	)
	for _, tool := range manifest.Tools {
		selectors = append(selectors, "tool:"+tool)
	}
	selectors = append(selectors, "manifest-sha256:"+hex.EncodeToString(sum[:]))
	if signer != "" {
		selectors = append(selectors, "signer:"+signer)
	}
	if exeDigest != "" {
		selectors = append(selectors, "exe-sha256:"+exeDigest)
	}
	return selectors, nil
}

// manifestPath returns the root-relative manifest path for the process:
// ManifestEnv from its environment, else the configured default. ok is false
// when the process names an invalid path (logged; no selectors).
func (p *Plugin) manifestPath(c *config, procDir string, log hclog.Logger) (string, bool, error) {
	f, err := os.Open(procDir + "/environ")
	if err != nil {
		_, err = p.procError(log, "failed to read process environment", err)
		return "", false, err
	}
	defer f.Close()
	value, found, err := lookupEnviron(f, ManifestEnv)
	if err != nil {
		_, err = p.procError(log, "failed to read process environment", err)
		return "", false, err
	}
	if !found || value == "" {
		return c.defaultManifest, true, nil
	}
	rel, err := rootRelative(value)
	if err != nil {
		log.Warn("Ignoring invalid manifest path in process environment", logKeyReason, ManifestEnv+" "+err.Error())
		return "", false, nil
	}
	return rel, true, nil
}

// signer returns the key id whose key verifies the manifest's detached
// signature, or "" when there is none. A missing signature file is normal
// (unsigned manifest); any other failure is logged and only costs the
// signer selector.
func (p *Plugin) signer(c *config, root *os.Root, manifestPath string, manifest []byte, log hclog.Logger) string {
	if len(c.keys) == 0 {
		return ""
	}
	sigPath := manifestPath + SignatureSuffix
	data, err := readInRoot(root, sigPath, maxSignatureFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err == nil {
		var keyID string
		if keyID, err = VerifyManifestSignature(c.keys, manifest, data); err == nil {
			return keyID
		}
		if keyID != "" {
			log = log.With(logKeyKeyID, keyID)
		}
	}
	log.Warn("Agent manifest signature not accepted; no signer selector", logKeyPath, "/"+sigPath, logKeyError, err.Error())
	return ""
}

// procError turns a failure to read the process's /proc entries into the
// answer: no selectors when the process is gone, an Internal error (logged
// by SPIRE) otherwise.
func (p *Plugin) procError(log hclog.Logger, msg string, err error) ([]string, error) {
	if isGone(err) {
		log.Debug("Process exited or was replaced during attestation; no selectors", logKeyError, err.Error())
		return nil, nil
	}
	return nil, status.Errorf(codes.Internal, "aiagent: %s: %v", msg, err)
}
