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
package main

import (
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
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
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

func main() {
	port := flag.Int("port", 0, "TCP port on 127.0.0.1 (0: a free one)")
	certFile := flag.String("cert", "vcsim-ca.pem", "where to write the server certificate (PEM)")
	username := flag.String("username", "hvpatch", "the one user that may log in")
	password := flag.String("password", "", "its password (required)")
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
	line, _ := json.Marshal(map[string]string{
		"url": u.String(), "username": *username, "password": *password, "ca_file": *certFile,
	})
	fmt.Println(string(line))
	os.Stdout.Sync()

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}
