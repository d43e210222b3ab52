package flows_test

import (
	"fmt"

	"github.com/flowspan/flowspan/flows"
)

func ExampleCompile() {
	facts := flows.BridgeFacts{Ports: map[string]flows.PortFacts{
		"vnet1":   {OFPort: 1, Tag: 10},
		"vnet2":   {OFPort: 2, Tag: 10},
		"mirror0": {OFPort: 3, Tag: 4095, Isolated: true},
	}}
	web := flows.Mirror{Name: "web", ID: 1, Ingress: []string{"vnet1"},
		Filters: []string{"tcp,tp_dst=443"}, Output: flows.Output{Port: "mirror0"}}
	res, err := flows.Compile(flows.Config{}, []flows.Mirror{web}, facts)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range res.Flows {
		if c := flows.Cookie(f.Cookie); c.Mirror() == 1 && c.Kind() != flows.KindEmit {
			fmt.Println(f)
		}
	}
	fmt.Println(res.Status["web"].Selections)
	// Output:
	// cookie=0xf5010a0001000000, table=5, priority=400,reg0=0x10000/0xffff0000,in_port=1 actions=load:0->NXM_NX_REG1[16..31],resubmit(,7)
	// cookie=0xf501150001000000, table=7, priority=40000,tcp,reg0=0x10000/0xffff0000,tp_dst=443 actions=resubmit(,8)
	// cookie=0xf5011f0001000000, table=8, priority=300,reg0=0x14000/0xffff4000 actions=drop
	// cookie=0xf501280001000000, table=9, priority=100,reg0=0x10000/0xffff0000,reg1=0/0xffff0000 actions=drop
	// [{0 vnet1 ingress}]
}

func ExampleParseFilter() {
	m, err := flows.ParseFilter("tp_dst=443,tcp,nw_src=10.0.0.7/24")
	fmt.Println(m, err)
	_, err = flows.ParseFilter("udp,tcp_dst=80")
	fmt.Println(err)
	// Output:
	// tcp,nw_src=10.0.0.0/24,tp_dst=443 <nil>
	// filter "udp,tcp_dst=80": column 5: "tcp_dst=80": tcp_dst requires tcp or tcp6 (e.g. "tcp,tcp_dst=80")
}
