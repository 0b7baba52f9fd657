use hickory_proto::rr::rdata::SOA;

use super::*;
use crate::index::tests::{external, service, slice};

fn zone() -> Zone {
    Zone::new(
        "cluster.local",
        30,
        ("kube-system".into(), "kube-dns".into()),
    )
    .expect("zone")
}

/// A synced index with namespaces `default` and `kube-system` and the kube-dns Service.
fn cluster() -> Index {
    let mut index = Index::default();
    index.synced = true;
    index.serial = 1_700_000_000;
    index.upsert_namespace("default");
    index.upsert_namespace("kube-system");
    let dns = service(
        "kube-system",
        "kube-dns",
        &["10.43.0.10"],
        &[("dns", 53), ("dns-tcp", 53)],
    );
    index.upsert_service(&dns);
    index
}

fn ask(index: &Index, name: &str, qtype: RecordType) -> Resolution {
    let name = Name::from_ascii(name).expect("name");
    answer(index, &zone(), &Question { name, qtype })
}

fn answered(index: &Index, name: &str, qtype: RecordType) -> Answer {
    match ask(index, name, qtype) {
        Resolution::Answer(answer) => answer,
        other => panic!("{name} {qtype}: expected an answer, got {other:?}"),
    }
}

/// Records as `name type data` lines.
fn lines(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect()
}

fn assert_nodata(answer: &Answer) {
    assert_eq!(answer.rcode, ResponseCode::NoError);
    assert!(answer.answers.is_empty(), "{:?}", lines(&answer.answers));
    assert_eq!(answer.authorities.len(), 1);
    assert_eq!(answer.authorities[0].record_type(), RecordType::SOA);
}

fn assert_nxdomain(answer: &Answer) {
    assert_eq!(answer.rcode, ResponseCode::NXDomain);
    assert!(answer.answers.is_empty());
    assert_eq!(answer.authorities[0].record_type(), RecordType::SOA);
}

#[test]
fn a_cluster_ip_service_resolves_to_its_cluster_ip() {
    let mut index = cluster();
    index.upsert_service(&service("default", "web", &["10.43.0.20"], &[("http", 80)]));
    let answer = answered(&index, "web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(answer.rcode, ResponseCode::NoError);
    assert_eq!(
        lines(&answer.answers),
        ["web.default.svc.cluster.local. A 10.43.0.20"]
    );
    assert_eq!(answer.answers[0].ttl, 30);
    assert!(answer.authorities.is_empty());
}

#[test]
fn a_dual_stack_service_answers_each_family_by_type() {
    let mut index = cluster();
    let web = service(
        "default",
        "web",
        &["10.43.0.20", "fd00:43::20"],
        &[("http", 80)],
    );
    index.upsert_service(&web);
    let a = answered(&index, "web.default.svc.cluster.local.", RecordType::A);
    let aaaa = answered(&index, "web.default.svc.cluster.local.", RecordType::AAAA);
    assert_eq!(
        lines(&a.answers),
        ["web.default.svc.cluster.local. A 10.43.0.20"]
    );
    assert_eq!(
        lines(&aaaa.answers),
        ["web.default.svc.cluster.local. AAAA fd00:43::20"]
    );
}

#[test]
fn an_existing_name_asked_for_a_type_it_lacks_is_nodata() {
    let mut index = cluster();
    index.upsert_service(&service("default", "web", &["10.43.0.20"], &[("http", 80)]));
    for qtype in [
        RecordType::AAAA,
        RecordType::MX,
        RecordType::TXT,
        RecordType::PTR,
    ] {
        assert_nodata(&answered(&index, "web.default.svc.cluster.local.", qtype));
    }
}

#[test]
fn an_unknown_service_is_nxdomain_with_the_zone_soa() {
    let index = cluster();
    let answer = answered(&index, "nope.default.svc.cluster.local.", RecordType::A);
    assert_nxdomain(&answer);
    let soa = &answer.authorities[0];
    assert_eq!(soa.name.to_ascii(), "cluster.local.");
    assert_eq!(soa.ttl, 30);
    let RData::SOA(data) = &soa.data else {
        panic!("not an SOA")
    };
    let expected = SOA::new(
        Name::from_ascii("ns.dns.cluster.local.").expect("name"),
        Name::from_ascii("hostmaster.cluster.local.").expect("name"),
        1_700_000_000,
        7200,
        1800,
        86400,
        30,
    );
    assert_eq!(data, &expected);
    // Every other type gives the same answer for a name that does not exist.
    assert_nxdomain(&answered(
        &index,
        "nope.default.svc.cluster.local.",
        RecordType::MX,
    ));
}

#[test]
fn before_the_first_lists_arrive_a_missing_name_is_servfail() {
    let mut index = cluster();
    index.synced = false;
    let answer = answered(&index, "nope.default.svc.cluster.local.", RecordType::A);
    assert_eq!(answer.rcode, ResponseCode::ServFail);
}

#[test]
fn a_namespace_name_is_nodata_if_it_exists_and_nxdomain_if_not() {
    let index = cluster();
    assert_nodata(&answered(
        &index,
        "default.svc.cluster.local.",
        RecordType::A,
    ));
    assert_nodata(&answered(
        &index,
        "default.pod.cluster.local.",
        RecordType::A,
    ));
    assert_nxdomain(&answered(
        &index,
        "missing.svc.cluster.local.",
        RecordType::A,
    ));
    // A Service in a namespace that is gone is gone too.
    let mut index = cluster();
    index.upsert_service(&service("old", "web", &["10.43.0.30"], &[("http", 80)]));
    assert_nxdomain(&answered(
        &index,
        "web.old.svc.cluster.local.",
        RecordType::A,
    ));
}

#[test]
fn the_apex_svc_and_pod_names_are_nodata_and_other_names_nxdomain() {
    let index = cluster();
    assert_nodata(&answered(&index, "svc.cluster.local.", RecordType::A));
    assert_nodata(&answered(&index, "pod.cluster.local.", RecordType::A));
    assert_nodata(&answered(&index, "cluster.local.", RecordType::MX));
    assert_nxdomain(&answered(&index, "other.cluster.local.", RecordType::A));
    assert_nxdomain(&answered(
        &index,
        "a.b.c.web.default.svc.cluster.local.",
        RecordType::A,
    ));
    // TXT is the exception: a name without records of its own is NXDOMAIN (as CoreDNS).
    assert_nxdomain(&answered(&index, "svc.cluster.local.", RecordType::TXT));
}

#[test]
fn names_are_matched_without_regard_to_case() {
    let mut index = cluster();
    index.upsert_service(&service("default", "web", &["10.43.0.20"], &[("http", 80)]));
    let answer = answered(&index, "Web.DEFAULT.svc.Cluster.Local.", RecordType::A);
    assert_eq!(
        lines(&answer.answers),
        ["web.default.svc.cluster.local. A 10.43.0.20"]
    );
}

fn headless_cluster() -> Index {
    let mut index = cluster();
    index.upsert_service(&service("default", "db", &["None"], &[("pg", 5432)]));
    let endpoints = [
        ("10.42.0.5", Some("db-0"), true),
        ("10.42.1.6", None, true),
        ("10.42.2.7", Some("db-2"), false),
    ];
    index.upsert_slice(&slice(
        "default",
        "db-x1",
        "db",
        &endpoints,
        &[("pg", 5432)],
    ));
    index
}

#[test]
fn a_headless_service_resolves_to_its_ready_endpoints() {
    let index = headless_cluster();
    let answer = answered(&index, "db.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&answer.answers),
        [
            "db.default.svc.cluster.local. A 10.42.0.5",
            "db.default.svc.cluster.local. A 10.42.1.6"
        ]
    );
}

#[test]
fn publish_not_ready_addresses_includes_endpoints_that_are_not_ready() {
    let mut index = headless_cluster();
    let mut db = service("default", "db", &["None"], &[("pg", 5432)]);
    db.spec.as_mut().expect("spec").publish_not_ready_addresses = Some(true);
    index.upsert_service(&db);
    let answer = answered(&index, "db.default.svc.cluster.local.", RecordType::A);
    assert_eq!(answer.answers.len(), 3);
    let answer = answered(&index, "db-2.db.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&answer.answers),
        ["db-2.db.default.svc.cluster.local. A 10.42.2.7"]
    );
}

#[test]
fn a_headless_service_without_ready_endpoints_is_nxdomain() {
    let mut index = cluster();
    index.upsert_service(&service("default", "db", &["None"], &[("pg", 5432)]));
    assert_nxdomain(&answered(
        &index,
        "db.default.svc.cluster.local.",
        RecordType::A,
    ));
    let not_ready = [("10.42.0.5", Some("db-0"), false)];
    index.upsert_slice(&slice(
        "default",
        "db-x1",
        "db",
        &not_ready,
        &[("pg", 5432)],
    ));
    assert_nxdomain(&answered(
        &index,
        "db.default.svc.cluster.local.",
        RecordType::A,
    ));
}

#[test]
fn an_endpoint_resolves_by_hostname_or_dashed_address() {
    let index = headless_cluster();
    let by_hostname = answered(&index, "db-0.db.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&by_hostname.answers),
        ["db-0.db.default.svc.cluster.local. A 10.42.0.5"]
    );
    let by_address = answered(
        &index,
        "10-42-1-6.db.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(by_address.answers.len(), 1);
    assert_nxdomain(&answered(
        &index,
        "db-9.db.default.svc.cluster.local.",
        RecordType::A,
    ));
    // Not-ready endpoints have no names.
    assert_nxdomain(&answered(
        &index,
        "db-2.db.default.svc.cluster.local.",
        RecordType::A,
    ));
}

#[test]
fn an_endpoint_of_a_cluster_ip_service_has_a_name_too() {
    let mut index = cluster();
    index.upsert_service(&service("default", "web", &["10.43.0.20"], &[("http", 80)]));
    let endpoints = [("10.42.0.8", None, true)];
    index.upsert_slice(&slice(
        "default",
        "web-a",
        "web",
        &endpoints,
        &[("http", 8080)],
    ));
    let answer = answered(
        &index,
        "10-42-0-8.web.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(
        lines(&answer.answers),
        ["10-42-0-8.web.default.svc.cluster.local. A 10.42.0.8"]
    );
}

#[test]
fn ipv6_endpoints_answer_aaaa_with_dashed_names() {
    let mut index = cluster();
    index.upsert_service(&service("default", "db", &["None"], &[("pg", 5432)]));
    let endpoints = [("fd00:42::5", None, true)];
    index.upsert_slice(&slice(
        "default",
        "db-v6",
        "db",
        &endpoints,
        &[("pg", 5432)],
    ));
    let answer = answered(&index, "db.default.svc.cluster.local.", RecordType::AAAA);
    assert_eq!(
        lines(&answer.answers),
        ["db.default.svc.cluster.local. AAAA fd00:42::5"]
    );
    assert_nodata(&answered(
        &index,
        "db.default.svc.cluster.local.",
        RecordType::A,
    ));
    let named = answered(
        &index,
        "fd00-42--5.db.default.svc.cluster.local.",
        RecordType::AAAA,
    );
    assert_eq!(named.answers.len(), 1);
}

#[test]
fn srv_of_a_named_port_points_at_the_service_with_its_address() {
    let mut index = cluster();
    let web = service(
        "default",
        "web",
        &["10.43.0.20"],
        &[("http", 80), ("https", 443)],
    );
    index.upsert_service(&web);
    let answer = answered(
        &index,
        "_https._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(
        lines(&answer.answers),
        ["_https._tcp.web.default.svc.cluster.local. SRV 0 100 443 web.default.svc.cluster.local."]
    );
    assert_eq!(
        lines(&answer.additionals),
        ["web.default.svc.cluster.local. A 10.43.0.20"]
    );
    // The SRV name has the service's addresses too.
    let a = answered(
        &index,
        "_https._tcp.web.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(a.answers.len(), 1);
}

#[test]
fn srv_without_port_labels_lists_every_port() {
    let mut index = cluster();
    let web = service(
        "default",
        "web",
        &["10.43.0.20"],
        &[("http", 80), ("https", 443)],
    );
    index.upsert_service(&web);
    let answer = answered(&index, "web.default.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        lines(&answer.answers),
        [
            "web.default.svc.cluster.local. SRV 0 50 80 web.default.svc.cluster.local.",
            "web.default.svc.cluster.local. SRV 0 50 443 web.default.svc.cluster.local.",
        ]
    );
    assert_eq!(answer.additionals.len(), 1);
}

#[test]
fn srv_of_a_headless_service_points_at_each_endpoint() {
    let index = headless_cluster();
    let answer = answered(
        &index,
        "_pg._tcp.db.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(
        lines(&answer.answers),
        [
            "_pg._tcp.db.default.svc.cluster.local. SRV 0 50 5432 db-0.db.default.svc.cluster.local.",
            "_pg._tcp.db.default.svc.cluster.local. SRV 0 50 5432 10-42-1-6.db.default.svc.cluster.local.",
        ]
    );
    assert_eq!(
        lines(&answer.additionals),
        [
            "db-0.db.default.svc.cluster.local. A 10.42.0.5",
            "10-42-1-6.db.default.svc.cluster.local. A 10.42.1.6",
        ]
    );
}

#[test]
fn srv_of_a_port_the_service_lacks_is_nxdomain() {
    let mut index = cluster();
    index.upsert_service(&service("default", "web", &["10.43.0.20"], &[("http", 80)]));
    let name = "_grpc._tcp.web.default.svc.cluster.local.";
    assert_nxdomain(&answered(&index, name, RecordType::SRV));
    let name = "_http._udp.web.default.svc.cluster.local.";
    assert_nxdomain(&answered(&index, name, RecordType::SRV));
}

#[test]
fn a_service_without_ports_resolves_but_has_no_srv_records() {
    let mut index = cluster();
    index.upsert_service(&service("default", "bare", &["10.43.0.40"], &[]));
    let a = answered(&index, "bare.default.svc.cluster.local.", RecordType::A);
    assert_eq!(a.answers.len(), 1);
    assert_nodata(&answered(
        &index,
        "bare.default.svc.cluster.local.",
        RecordType::SRV,
    ));
}

#[test]
fn an_external_name_outside_the_zone_is_chased_upstream() {
    let mut index = cluster();
    index.upsert_service(&external("default", "search", "www.example.com"));
    let Resolution::Chase {
        cnames,
        target,
        soa,
    } = ask(&index, "search.default.svc.cluster.local.", RecordType::A)
    else {
        panic!("expected a chase");
    };
    assert_eq!(
        lines(&cnames),
        ["search.default.svc.cluster.local. CNAME www.example.com."]
    );
    assert_eq!(target.to_ascii(), "www.example.com.");
    assert_eq!(soa.record_type(), RecordType::SOA);
}

#[test]
fn an_external_name_inside_the_zone_is_followed() {
    let mut index = cluster();
    index.upsert_service(&service("default", "web", &["10.43.0.20"], &[("http", 80)]));
    index.upsert_service(&external(
        "default",
        "alias",
        "web.default.svc.cluster.local",
    ));
    let answer = answered(&index, "alias.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&answer.answers),
        [
            "alias.default.svc.cluster.local. CNAME web.default.svc.cluster.local.",
            "web.default.svc.cluster.local. A 10.43.0.20",
        ]
    );
    // A target that does not resolve leaves nothing, not even the CNAME: NODATA.
    index.upsert_service(&external(
        "default",
        "dangling",
        "gone.default.svc.cluster.local",
    ));
    assert_nodata(&answered(
        &index,
        "dangling.default.svc.cluster.local.",
        RecordType::A,
    ));
}

#[test]
fn a_cname_question_for_an_external_name_gets_the_cname() {
    let mut index = cluster();
    index.upsert_service(&external("default", "search", "www.example.com"));
    let answer = answered(
        &index,
        "search.default.svc.cluster.local.",
        RecordType::CNAME,
    );
    assert_eq!(
        lines(&answer.answers),
        ["search.default.svc.cluster.local. CNAME www.example.com."]
    );
    // SRV names and SRV records do not exist for ExternalName Services.
    assert_nodata(&answered(
        &index,
        "search.default.svc.cluster.local.",
        RecordType::SRV,
    ));
    let name = "_http._tcp.search.default.svc.cluster.local.";
    assert_nxdomain(&answered(&index, name, RecordType::SRV));
}

#[test]
fn a_pod_name_answers_the_address_it_spells() {
    let index = cluster();
    let a = answered(
        &index,
        "10-42-0-5.default.pod.cluster.local.",
        RecordType::A,
    );
    assert_eq!(
        lines(&a.answers),
        ["10-42-0-5.default.pod.cluster.local. A 10.42.0.5"]
    );
    let aaaa = answered(
        &index,
        "fd00-42--5.default.pod.cluster.local.",
        RecordType::AAAA,
    );
    assert_eq!(
        lines(&aaaa.answers),
        ["fd00-42--5.default.pod.cluster.local. AAAA fd00:42::5"]
    );
    assert_nodata(&answered(
        &index,
        "10-42-0-5.default.pod.cluster.local.",
        RecordType::AAAA,
    ));
    assert_nxdomain(&answered(
        &index,
        "not-an-ip.default.pod.cluster.local.",
        RecordType::A,
    ));
    assert_nxdomain(&answered(
        &index,
        "10-42-0-5.missing.pod.cluster.local.",
        RecordType::A,
    ));
}

#[test]
fn ptr_of_a_cluster_ip_names_its_service() {
    let mut index = cluster();
    index.upsert_service(&service(
        "default",
        "web",
        &["10.43.0.20", "fd00:43::20"],
        &[],
    ));
    let answer = answered(&index, "20.0.43.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        lines(&answer.answers),
        ["20.0.43.10.in-addr.arpa. PTR web.default.svc.cluster.local."]
    );
    let v6 = "0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.4.0.0.0.0.d.f.ip6.arpa.";
    let answer = answered(&index, v6, RecordType::PTR);
    assert_eq!(answer.answers.len(), 1);
}

#[test]
fn ptr_of_an_endpoint_names_the_endpoint() {
    let index = headless_cluster();
    let answer = answered(&index, "5.0.42.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        lines(&answer.answers),
        ["5.0.42.10.in-addr.arpa. PTR db-0.db.default.svc.cluster.local."]
    );
    let answer = answered(&index, "6.1.42.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        lines(&answer.answers),
        ["6.1.42.10.in-addr.arpa. PTR 10-42-1-6.db.default.svc.cluster.local."]
    );
}

#[test]
fn reverse_names_the_cluster_does_not_know_are_forwarded() {
    let index = headless_cluster();
    assert_eq!(
        ask(&index, "7.2.42.10.in-addr.arpa.", RecordType::PTR),
        Resolution::Forward
    );
    assert_eq!(
        ask(&index, "1.1.168.192.in-addr.arpa.", RecordType::PTR),
        Resolution::Forward
    );
    assert_eq!(
        ask(&index, "42.10.in-addr.arpa.", RecordType::PTR),
        Resolution::Forward
    );
    assert_eq!(
        ask(&index, "5.0.42.10.in-addr.arpa.", RecordType::A),
        Resolution::Forward
    );
}

#[test]
fn names_outside_the_zone_are_forwarded() {
    let index = cluster();
    assert_eq!(
        ask(&index, "www.example.com.", RecordType::A),
        Resolution::Forward
    );
    assert_eq!(ask(&index, "local.", RecordType::A), Resolution::Forward);
}

#[test]
fn dns_version_has_the_schema_version() {
    let index = cluster();
    let answer = answered(&index, "dns-version.cluster.local.", RecordType::TXT);
    assert_eq!(
        lines(&answer.answers),
        ["dns-version.cluster.local. TXT 1.1.0"]
    );
    assert_eq!(answer.answers[0].ttl, 28800);
}

#[test]
fn the_apex_has_soa_and_ns_records_naming_the_dns_service() {
    let index = cluster();
    let soa = answered(&index, "cluster.local.", RecordType::SOA);
    assert_eq!(soa.answers[0].record_type(), RecordType::SOA);
    let ns = answered(&index, "cluster.local.", RecordType::NS);
    assert_eq!(
        lines(&ns.answers),
        ["cluster.local. NS kube-dns.kube-system.svc.cluster.local."]
    );
    assert_eq!(
        lines(&ns.additionals),
        ["kube-dns.kube-system.svc.cluster.local. A 10.43.0.10"]
    );
    let a = answered(&index, "ns.dns.cluster.local.", RecordType::A);
    assert_eq!(lines(&a.answers), ["ns.dns.cluster.local. A 10.43.0.10"]);
    let apex = answered(&index, "cluster.local.", RecordType::A);
    assert_eq!(lines(&apex.answers), ["cluster.local. A 10.43.0.10"]);
    // SOA below the apex is NODATA whether or not the name exists.
    assert_nodata(&answered(
        &index,
        "nope.default.svc.cluster.local.",
        RecordType::SOA,
    ));
}

#[test]
fn zone_transfers_are_refused() {
    let index = cluster();
    let answer = answered(&index, "cluster.local.", RecordType::AXFR);
    assert_eq!(answer.rcode, ResponseCode::Refused);
}

#[test]
fn reverse_names_parse_only_when_complete() {
    let name = |s: &str| Name::from_ascii(s).expect("name");
    assert_eq!(
        reverse_address(&name("4.3.2.1.in-addr.arpa.")),
        Some("1.2.3.4".parse().unwrap())
    );
    assert_eq!(reverse_address(&name("3.2.1.in-addr.arpa.")), None);
    assert_eq!(reverse_address(&name("256.3.2.1.in-addr.arpa.")), None);
    let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.IP6.ARPA.";
    assert_eq!(reverse_address(&name(v6)), Some("fd00::1".parse().unwrap()));
}

#[test]
fn parse_reads_names_as_coredns_does() {
    let lookup = |base: &[&'static str]| parse(base);
    assert_eq!(lookup(&[]), Request::Empty);
    assert_eq!(lookup(&["svc"]), Request::Empty);
    assert_eq!(lookup(&["x"]), Request::Invalid);
    let Request::Lookup(srv) = lookup(&["_http", "_tcp", "web", "default", "svc"]) else {
        panic!("not a lookup");
    };
    assert_eq!(
        (srv.port, srv.protocol, srv.service),
        ("http", "tcp", Some("web"))
    );
    let Request::Lookup(endpoint) = lookup(&["db-0", "db", "default", "svc"]) else {
        panic!("not a lookup");
    };
    assert_eq!(endpoint.endpoint, Some("db-0"));
}
