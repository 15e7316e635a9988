// A minimal vcsim for the esx plugin's tests: Debian ships govmomi's simulator library but no
// vcsim program. It builds the vCenter model (simulator.VPX) with the sizes given, serves it
// over HTTPS on the address given with the certificate given, accepts one user and password,
// prints the SDK URL on one line and runs until SIGTERM or SIGINT, then removes the model's
// temporary datastore folders.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/vmware/govmomi/simulator"
)

func main() {
	listen := flag.String("l", "127.0.0.1:0", "listen address (port 0: a free one)")
	cert := flag.String("cert", "", "TLS certificate (PEM)")
	key := flag.String("key", "", "TLS private key (PEM)")
	clusterHosts := flag.Int("cluster-host", 3, "hosts in each cluster")
	standalone := flag.Int("standalone-host", 1, "standalone hosts per datacenter")
	datastores := flag.Int("ds", 2, "datastores")
	machines := flag.Int("vm", 2, "virtual machines per resource pool")
	user := flag.String("username", "user", "the only user that may log in")
	password := flag.String("password", "pass", "its password")
	slow := flag.String("slow", "", "METHOD=MILLISECONDS: answer that SOAP method late")
	flag.Parse()

	model := simulator.VPX()
	model.ClusterHost = *clusterHosts
	model.Host = *standalone
	model.Datastore = *datastores
	model.Machine = *machines
	if name, delay, found := strings.Cut(*slow, "="); found {
		milliseconds, err := strconv.Atoi(delay)
		if err != nil {
			fmt.Fprintln(os.Stderr, "vcsim: -slow wants METHOD=MILLISECONDS")
			os.Exit(2)
		}
		model.DelayConfig.MethodDelay = map[string]int{name: milliseconds}
	}
	if err := model.Create(); err != nil {
		fmt.Fprintln(os.Stderr, "vcsim: cannot create the model:", err)
		os.Exit(1)
	}
	defer model.Remove()

	// A user of our own (not simulator.DefaultLogin, with which any password is accepted).
	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*user, *password)}
	if *cert != "" {
		pair, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			fmt.Fprintln(os.Stderr, "vcsim: cannot load the certificate:", err)
			os.Exit(1)
		}
		model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	} else {
		model.Service.TLS = new(tls.Config)
	}
	server := model.Service.NewServer()
	defer server.Close()

	// The URL without the default user: the caller knows it (user/pass).
	address := *server.URL
	address.User = nil
	fmt.Println(address.String())
	os.Stdout.Sync()

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	<-signals
}
