// Command vcsim-peer runs govmomi's vCenter simulator as a test peer for hvpatch's vSphere
// connector (tests/vcsim_support.py builds and starts it).
//
// The model: two datacenters, each with two clusters of three hosts and one standalone host,
// and two VMs per cluster and per standalone host. It listens on 127.0.0.1 (a free port unless
// -port is given) over TLS with a fresh self-signed ECDSA certificate (written as PEM to -cert,
// so clients can keep verification on), accepts only the -username/-password login, prints one
// JSON line {"url", "username", "password", "ca_file"} on stdout and serves until it is killed.
//
// Every datastore of the model is mounted on every host, and says so as vCenter does
// (summary.multipleHostAccess true). One more datastore, "DC0_C0_H0_local", is created on host
// DC0_C0_H0 alone through the API and reports multipleHostAccess false: a host-local disk (the
// tests move a VM onto it). Custom attributes, anti-affinity rules and unmigratable VMs are created by the tests through
// the vSphere API itself, not here.
//
// With -patch-hook (off by default; the connector's own contract tests run without it) the peer
// also stands in for what vcsim cannot do, so that a whole rollout can run through it (see
// installPatchHook):
//
//   - the install itself: a plain-HTTP hook on a second 127.0.0.1 port (its address is printed as
//     "hook_url"). POST /install with form fields host and build, on a host in maintenance mode,
//     stages that ESXi build: the host reports summary.rebootRequired true, and its build is
//     unchanged until it reboots, as on real ESXi after `esxcli software profile update`.
//   - the reboot: vcsim 0.24 does not implement HostSystem.RebootHost_Task. The peer adds it: not
//     forced, it is refused outside maintenance mode (InvalidState, as vCenter does); otherwise
//     the task succeeds at once, the host gets a new runtime.bootTime, the staged build becomes
//     config.product.build (and summary.config.product), and rebootRequired is cleared.
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"sync"
	"syscall"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// selfSigned returns a certificate for 127.0.0.1 and localhost that is its own CA, and its PEM.
func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "vcsim test peer", Organization: []string{"hvpatch tests"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	keyDer, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDer})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	return pair, certPEM, err
}

// addLocalDatastore marks the model's datastores shared and creates one host-local datastore.
func addLocalDatastore(u *url.URL, username, password, dir string) error {
	for _, e := range simulator.Map.All("Datastore") {
		ds := e.(*simulator.Datastore)
		ds.Summary.MultipleHostAccess = types.NewBool(true)
	}
	ctx := context.Background()
	login := *u
	login.User = url.UserPassword(username, password)
	client, err := govmomi.NewClient(ctx, &login, true) // the peer's own cert, in-process
	if err != nil {
		return err
	}
	defer client.Logout(ctx)
	finder := find.NewFinder(client.Client, false)
	dc, err := finder.Datacenter(ctx, "DC0")
	if err != nil {
		return err
	}
	finder.SetDatacenter(dc)
	host, err := finder.HostSystem(ctx, "DC0_C0_H0")
	if err != nil {
		return err
	}
	dss, err := host.ConfigManager().DatastoreSystem(ctx)
	if err != nil {
		return err
	}
	var created *object.Datastore
	if created, err = dss.CreateLocalDatastore(ctx, "DC0_C0_H0_local", dir); err != nil {
		return err
	}
	ds := simulator.Map.Get(created.Reference()).(*simulator.Datastore)
	ds.Summary.MultipleHostAccess = types.NewBool(false)
	return nil
}

// rebootType is the managed-object type of the peer's stand-in for RebootHost_Task: one object per
// host, whose value is the host's.
const rebootType = "HvpatchHostReboot"

// patchHook holds the builds staged by the install hook until the host reboots.
type patchHook struct {
	mu     sync.Mutex
	staged map[types.ManagedObjectReference]string
}

// hostReboot implements RebootHost_Task for one host (vcsim 0.24 has no such method).
type hostReboot struct {
	Self types.ManagedObjectReference
	host types.ManagedObjectReference
	hook *patchHook
}

func (r *hostReboot) Reference() types.ManagedObjectReference { return r.Self }

// RebootHostTask reboots the host at once: a new boot time, and the staged build becomes the
// running one. Not forced, it is refused outside maintenance mode, as vCenter refuses it.
func (r *hostReboot) RebootHostTask(req *types.RebootHost_Task) soap.HasFault {
	host := simulator.Map.Get(r.host).(*simulator.HostSystem)
	body := &methods.RebootHost_TaskBody{}
	var inMaintenance bool
	simulator.Map.WithLock(host, func() { inMaintenance = host.Runtime.InMaintenanceMode })
	if !req.Force && !inMaintenance {
		body.Fault_ = simulator.Fault("the host is not in maintenance mode", &types.InvalidState{})
		return body
	}
	task := simulator.CreateTask(host, "rebootHost", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		r.hook.mu.Lock()
		build, staged := r.hook.staged[r.host]
		delete(r.hook.staged, r.host)
		r.hook.mu.Unlock()
		simulator.Map.WithLock(host, func() {
			now := time.Now()
			host.Runtime.BootTime = &now
			changes := []types.PropertyChange{{Name: "runtime.bootTime", Val: now}}
			if staged {
				host.Config.Product.Build = build
				host.Config.Product.FullName = fmt.Sprintf("VMware ESXi %s build-%s",
					host.Config.Product.Version, build)
				product := host.Config.Product // a copy: the model's hosts share one summary product
				host.Summary.Config.Product = &product
				host.Summary.RebootRequired = false
				changes = append(changes, types.PropertyChange{Name: "config.product.build", Val: build},
					types.PropertyChange{Name: "summary.rebootRequired", Val: false})
			}
			simulator.Map.Update(host, changes)
		})
		return nil, nil
	})
	body.Res = &types.RebootHost_TaskResponse{Returnval: task.Run()}
	return body
}

// install stages build on the host named name (the hook's POST /install).
func (p *patchHook) install(name, build string) (int, string) {
	if !buildNumber.MatchString(build) {
		return http.StatusBadRequest, fmt.Sprintf("build %q: expected an ESXi build number\n", build)
	}
	for _, e := range simulator.Map.All("HostSystem") {
		host := e.(*simulator.HostSystem)
		if host.Name != name {
			continue
		}
		code, msg := http.StatusOK, ""
		simulator.Map.WithLock(host, func() {
			if !host.Runtime.InMaintenanceMode {
				code, msg = http.StatusConflict, fmt.Sprintf("%s is not in maintenance mode\n", name)
				return
			}
			p.mu.Lock()
			p.staged[host.Reference()] = build
			p.mu.Unlock()
			host.Summary.RebootRequired = true
			simulator.Map.Update(host, []types.PropertyChange{{Name: "summary.rebootRequired", Val: true}})
			msg = fmt.Sprintf("staged ESXi build %s on %s (running %s); reboot required\n", build,
				name, host.Config.Product.Build)
		})
		return code, msg
	}
	return http.StatusNotFound, fmt.Sprintf("no host named %q\n", name)
}

var (
	buildNumber = regexp.MustCompile(`^[0-9]{4,10}$`)
	rebootThis  = regexp.MustCompile(`(<_this[^>]*type=")HostSystem("[^>]*>)`)
)

// installPatchHook registers the reboot stand-ins, routes RebootHost_Task calls to them and
// starts the install hook; it returns the hook's URL.
func installPatchHook(server *simulator.Server) (string, error) {
	hook := &patchHook{staged: map[types.ManagedObjectReference]string{}}
	for _, e := range simulator.Map.All("HostSystem") {
		ref := e.Reference()
		simulator.Map.Put(&hostReboot{
			Self: types.ManagedObjectReference{Type: rebootType, Value: ref.Value},
			host: ref, hook: hook,
		})
	}
	// A RebootHost_Task call on a host goes to its stand-in; vcsim itself does everything else
	// (the session check, locking, the task, the SOAP faults and the response). The handler is
	// swapped before any client has connected.
	sdk := server.Config.Handler
	server.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.Body != nil {
			body, err := ioutil.ReadAll(r.Body)
			_ = r.Body.Close()
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			if bytes.Contains(body, []byte("RebootHost_Task")) {
				body = rebootThis.ReplaceAll(body, []byte("${1}"+rebootType+"${2}"))
			}
			r.Body = ioutil.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		}
		sdk.ServeHTTP(w, r)
	})

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/install", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		code, msg := hook.install(r.FormValue("host"), r.FormValue("build"))
		w.WriteHeader(code)
		_, _ = w.Write([]byte(msg))
	})
	go func() { _ = http.Serve(listener, mux) }()
	return "http://" + listener.Addr().String(), nil
}

func main() {
	port := flag.Int("port", 0, "TCP port on 127.0.0.1 (0: a free one)")
	certFile := flag.String("cert", "vcsim-ca.pem", "where to write the server certificate (PEM)")
	username := flag.String("username", "hvpatch", "the one user that may log in")
	password := flag.String("password", "", "its password (required)")
	withHook := flag.Bool("patch-hook", false, "add the install hook and RebootHost_Task (see above)")
	flag.Parse()
	if *password == "" {
		log.Fatal("-password is required")
	}

	model := simulator.VPX()
	model.Datacenter = 2
	model.Cluster = 2
	model.ClusterHost = 3
	model.Host = 1
	model.Machine = 2
	if err := model.Create(); err != nil {
		log.Fatalf("create model: %v", err)
	}
	defer model.Remove()

	pair, certPEM, err := selfSigned()
	if err != nil {
		log.Fatalf("certificate: %v", err)
	}
	if err := ioutil.WriteFile(*certFile, certPEM, 0o644); err != nil {
		log.Fatalf("write certificate: %v", err)
	}
	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	model.Service.Listen = &url.URL{
		Host: fmt.Sprintf("127.0.0.1:%d", *port),
		User: url.UserPassword(*username, *password),
	}
	server := model.Service.NewServer()
	defer server.Close()
	hookURL := ""
	if *withHook {
		if hookURL, err = installPatchHook(server); err != nil {
			log.Fatalf("patch hook: %v", err)
		}
	}

	localDir, err := ioutil.TempDir("", "vcsim-local-ds-")
	if err != nil {
		log.Fatalf("local datastore: %v", err)
	}
	defer os.RemoveAll(localDir)
	if err := addLocalDatastore(server.URL, *username, *password, localDir); err != nil {
		log.Fatalf("local datastore: %v", err)
	}

	u := *server.URL
	u.User = nil
	info := map[string]string{
		"url": u.String(), "username": *username, "password": *password, "ca_file": *certFile,
	}
	if hookURL != "" {
		info["hook_url"] = hookURL
	}
	line, _ := json.Marshal(info)
	fmt.Println(string(line))
	os.Stdout.Sync()

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}
