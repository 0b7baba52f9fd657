//! DNS messages in and out: reading a query, making the response's header, question and EDNS
//! from it, and encoding a response so it fits the client's transport (the EDNS0 payload
//! size over UDP, with the TC bit when answers had to be left out). Pure.

use hickory_proto::ProtoError;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{Name, Record};

use crate::lookup::Answer;

/// The largest UDP response to a client that sent no EDNS (RFC 1035).
const PLAIN_UDP_SIZE: u16 = 512;
/// The largest UDP payload accepted from a client's EDNS, and advertised back.
const MAX_UDP_SIZE: u16 = 4096;
/// The largest message TCP's two-byte length can carry.
pub(crate) const MAX_TCP_SIZE: usize = 65535;

/// A datagram or TCP frame, read.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A standard query with one question.
    Query(Message),
    /// Something answered with an error right away (FORMERR, NOTIMP, BADVERS).
    Reply(Message),
    /// Not worth answering: a response, or too short to carry an ID.
    Drop,
}

/// Reads a message from the wire.
pub(crate) fn read(bytes: &[u8]) -> Incoming {
    let request = match Message::from_vec(bytes) {
        Ok(request) => request,
        Err(_) => {
            // A header is enough to say FORMERR to its sender.
            let (Some(&high), Some(&low), true) = (bytes.first(), bytes.get(1), bytes.len() >= 12)
            else {
                return Incoming::Drop;
            };
            if bytes[2] & 0x80 != 0 {
                return Incoming::Drop;
            }
            let id = u16::from_be_bytes([high, low]);
            return Incoming::Reply(Message::error_msg(id, OpCode::Query, ResponseCode::FormErr));
        }
    };
    if request.metadata.message_type != MessageType::Query {
        return Incoming::Drop;
    }
    let error = if request.metadata.op_code != OpCode::Query {
        Some(ResponseCode::NotImp)
    } else if request.queries.len() != 1 {
        Some(ResponseCode::FormErr)
    } else if request.edns.as_ref().is_some_and(|edns| edns.version() > 0) {
        Some(ResponseCode::BADVERS)
    } else {
        None
    };
    match error {
        Some(rcode) => {
            let mut reply = response_to(&request);
            reply.metadata.response_code = rcode;
            Incoming::Reply(reply)
        }
        None => Incoming::Query(request),
    }
}

/// An empty response to `request`: its ID, opcode, RD and CD bits and question, and an OPT
/// record if it had one.
pub(crate) fn response_to(request: &Message) -> Message {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.checking_disabled = request.metadata.checking_disabled;
    response.queries = request.queries.clone();
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_SIZE);
        response.set_edns(edns);
    }
    response
}

/// The response carrying an answer from the cluster's records. Records named by the
/// question take its spelling back (the lookup works in lower case).
pub(crate) fn authoritative(request: &Message, answer: Answer) -> Message {
    let mut response = response_to(request);
    response.metadata.authoritative = true;
    response.metadata.response_code = answer.rcode;
    response.answers = answer.answers;
    response.authorities = answer.authorities;
    response.additionals = answer.additionals;
    if let Some(question) = request.queries.first() {
        respell(&mut response.answers, question.name());
    }
    response
}

/// The response carrying an upstream resolver's answer.
pub(crate) fn forwarded(request: &Message, upstream: &Message) -> Message {
    let mut response = response_to(request);
    response.metadata.response_code = upstream.metadata.response_code;
    response.metadata.authoritative = upstream.metadata.authoritative;
    response.metadata.recursion_available = upstream.metadata.recursion_available;
    response.metadata.authentic_data = upstream.metadata.authentic_data;
    response.answers = upstream.answers.clone();
    response.authorities = upstream.authorities.clone();
    response.additionals = upstream.additionals.clone();
    if let Some(question) = request.queries.first() {
        respell(&mut response.answers, question.name());
    }
    response
}

/// An error response (SERVFAIL when forwarding failed).
pub(crate) fn error(request: &Message, rcode: ResponseCode) -> Message {
    let mut response = response_to(request);
    response.metadata.response_code = rcode;
    response
}

/// Gives records owned by `name` (in any case) its spelling.
fn respell(records: &mut [Record], name: &Name) {
    for record in records.iter_mut().filter(|record| record.name == *name) {
        record.name = name.clone();
    }
}

/// The largest UDP response `request`'s sender takes: its EDNS payload size, or 512.
pub(crate) fn udp_limit(request: &Message) -> usize {
    let size = request
        .edns
        .as_ref()
        .map_or(PLAIN_UDP_SIZE, Edns::max_payload);
    usize::from(size.clamp(PLAIN_UDP_SIZE, MAX_UDP_SIZE))
}

/// Encodes `response` in at most `limit` bytes. A response too long keeps the most records
/// that fit (answers first, then authority, then additional); the TC bit is set when an
/// answer or authority record had to go, so the client asks again over TCP. Additional
/// records may go silently (RFC 2181, section 9).
pub(crate) fn encode(response: &Message, limit: usize) -> Result<Vec<u8>, ProtoError> {
    let bytes = response.to_vec()?;
    if bytes.len() <= limit {
        return Ok(bytes);
    }
    let needed = response.answers.len() + response.authorities.len();
    let total = needed + response.additionals.len();
    // The longest prefix of the records that fits, by bisection: fits(0) holds unless even
    // the question does not fit, and fits(total) does not.
    let (mut fits, mut too_long) = (0, total);
    let mut best = encode_prefix(response, 0, needed)?;
    while too_long - fits > 1 {
        let middle = (fits + too_long) / 2;
        let bytes = encode_prefix(response, middle, needed)?;
        if bytes.len() <= limit {
            (fits, best) = (middle, bytes);
        } else {
            too_long = middle;
        }
    }
    Ok(best)
}

/// `response` with only its first `keep` records, truncated if fewer than `needed` remain.
fn encode_prefix(response: &Message, keep: usize, needed: usize) -> Result<Vec<u8>, ProtoError> {
    let mut shorter = response.clone();
    let mut left = keep;
    for section in [
        &mut shorter.answers,
        &mut shorter.authorities,
        &mut shorter.additionals,
    ] {
        let kept = section.len().min(left);
        section.truncate(kept);
        left -= kept;
    }
    shorter.metadata.truncation = keep < needed;
    shorter.to_vec()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::op::Query;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{RData, RecordType};

    use super::*;

    fn query(name: &str, edns: Option<u16>) -> Message {
        let mut message = Message::query();
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(
            Name::from_ascii(name).expect("name"),
            RecordType::A,
        ));
        if let Some(size) = edns {
            let mut opt = Edns::new();
            opt.set_max_payload(size);
            message.set_edns(opt);
        }
        message
    }

    fn many_addresses(request: &Message, count: u32) -> Message {
        let name = request.queries[0].name().clone();
        let answers = (0..count)
            .map(|i| Record::from_rdata(name.clone(), 30, RData::A(A(Ipv4Addr::from(i)))))
            .collect();
        let answer = Answer {
            rcode: ResponseCode::NoError,
            answers,
            authorities: Vec::new(),
            additionals: Vec::new(),
        };
        authoritative(request, answer)
    }

    #[test]
    fn a_query_with_one_question_is_a_query() {
        let bytes = query("web.default.svc.cluster.local.", None)
            .to_vec()
            .expect("encode");
        assert!(matches!(read(&bytes), Incoming::Query(_)));
    }

    #[test]
    fn garbage_with_a_header_is_formerr_and_shorter_garbage_is_dropped() {
        let mut bytes = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff];
        let Incoming::Reply(reply) = read(&bytes) else {
            panic!("expected a reply")
        };
        assert_eq!(reply.metadata.id, 0x1234);
        assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
        bytes.truncate(5);
        assert!(matches!(read(&bytes), Incoming::Drop));
    }

    #[test]
    fn other_opcodes_are_not_implemented_and_two_questions_are_formerr() {
        let mut notify = query("cluster.local.", None);
        notify.metadata.op_code = OpCode::Notify;
        let Incoming::Reply(reply) = read(&notify.to_vec().expect("encode")) else {
            panic!("expected a reply");
        };
        assert_eq!(reply.metadata.response_code, ResponseCode::NotImp);
        let mut two = query("cluster.local.", None);
        two.add_query(Query::query(
            Name::from_ascii("a.").expect("name"),
            RecordType::A,
        ));
        let Incoming::Reply(reply) = read(&two.to_vec().expect("encode")) else {
            panic!("expected a reply");
        };
        assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    }

    #[test]
    fn a_response_keeps_the_id_question_and_rd_and_answers_edns_with_edns() {
        let request = query("Web.Default.svc.cluster.local.", Some(1232));
        let response = many_addresses(&request, 1);
        assert_eq!(response.metadata.id, request.metadata.id);
        assert!(response.metadata.recursion_desired && response.metadata.authoritative);
        assert!(!response.metadata.recursion_available);
        assert!(response.edns.is_some());
        // The answer is named as the question was spelled.
        assert_eq!(
            response.answers[0].name.to_ascii(),
            "Web.Default.svc.cluster.local."
        );
        assert!(response_to(&query("a.", None)).edns.is_none());
    }

    #[test]
    fn a_udp_answer_too_long_for_the_client_is_cut_and_marked_truncated() {
        let request = query("db.default.svc.cluster.local.", None);
        let response = many_addresses(&request, 100);
        let bytes = encode(&response, udp_limit(&request)).expect("encode");
        assert!(bytes.len() <= 512);
        let decoded = Message::from_vec(&bytes).expect("decode");
        assert!(decoded.metadata.truncation);
        assert!(!decoded.answers.is_empty() && decoded.answers.len() < 100);
        // Over TCP, or with a large enough EDNS size, all of it goes.
        let whole = encode(&response, MAX_TCP_SIZE).expect("encode");
        assert_eq!(
            Message::from_vec(&whole).expect("decode").answers.len(),
            100
        );
        let edns_request = query("db.default.svc.cluster.local.", Some(4096));
        let response = many_addresses(&edns_request, 100);
        let bytes = encode(&response, udp_limit(&edns_request)).expect("encode");
        let decoded = Message::from_vec(&bytes).expect("decode");
        assert!(!decoded.metadata.truncation);
        assert_eq!(decoded.answers.len(), 100);
    }

    #[test]
    fn additional_records_that_do_not_fit_are_left_out_without_truncation() {
        let request = query("_pg._tcp.db.default.svc.cluster.local.", None);
        let mut response = many_addresses(&request, 1);
        response.additionals = many_addresses(&request, 100).answers;
        let bytes = encode(&response, udp_limit(&request)).expect("encode");
        let decoded = Message::from_vec(&bytes).expect("decode");
        assert!(!decoded.metadata.truncation);
        assert_eq!(decoded.answers.len(), 1);
        assert!(decoded.additionals.len() < 100);
    }

    #[test]
    fn the_udp_limit_follows_the_clients_edns_size_within_bounds() {
        assert_eq!(udp_limit(&query("a.", None)), 512);
        assert_eq!(udp_limit(&query("a.", Some(1232))), 1232);
        assert_eq!(udp_limit(&query("a.", Some(100))), 512);
        assert_eq!(udp_limit(&query("a.", Some(65000))), 4096);
    }
}
