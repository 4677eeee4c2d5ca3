var $,xe,ct,M,ee,J,we,B,Se,ne,te,dt,L=Symbol.for("pv"),z={},G=[],mt=/^m(i|n|o|s|text|space)$/,oe=Array.isArray,se=G.slice,I=Object.assign;function R(t){t&&t.parentNode&&t.remove()}function Ce(t,e,n){var o,a,s,r={},i=arguments.length;for(s in e)s=="key"?o=e[s]:s=="ref"&&typeof t!="function"?a=e[s]:r[s]=e[s];return i>2&&(r.children=i>3?se.call(arguments,2):n),H(t,r,o,a,null)}function H(t,e,n,o,a){var s={type:t,props:e,key:n,ref:o,__k:null,__:null,__b:0,__e:null,__c:null,constructor:L,__v:a||++xe,__i:-1,__u:0};return!a&&$.vnode&&$.vnode(s),s}function Q(t){return t.children}function j(t,e){this.props=t,this.context=e,this.__g=0}function A(t,e){if(e==null)return t.__&&A(t.__,t.__i+1);for(var n;e<t.__k.length;e++)if((n=t.__k[e])&&n.__e)return n.__e;return typeof t.type!="function"||t.props.__P?null:A(t)}function ft(t){var e,n=t.__v,o=n.__e,a=[],s=[],r=t.__P;r&&((e=I({constructor:L},n)).__v=n.__v+1,$.vnode&&$.vnode(e),re(r,e,n,t.__n,r.namespaceURI,32&n.__u?[o]:null,a,o||A(n),32&n.__u,s),e.__v=n.__v,e.__.__k[e.__i]=e,Ne(a,e,s),n.__=n.__e=null,e.__e!=o&&Pe(e))}function Pe(t){if((t=t.__)&&t.__c&&!t.props.__P)return t.__e=null,t.__k.some(function(e){return e&&(t.__e=e.__e)}),Pe(t)}function ke(t){(8&t.__g||(t.__g|=8,M.push(t),J++))&&ee==$.debounceRendering||((ee=$.debounceRendering)||queueMicrotask)(Te)}function Te(){try{for(var t,e=1;M.length;)M.length>e&&M.sort(we),t=M.shift(),e=M.length,8&t.__g&&ft(t)}finally{(J=M.length)&&(ee||queueMicrotask)(Te)}}function Me(t,e,n,o,a,s,r,i,c,p,l){var g,u,_,f,b,h,d=o.__k||G,m=e.length;for(c=pt(n,e,d,c,m),g=0;g<m;g++)(_=n.__k[g])!=null&&(u=~_.__i&&d[_.__i]||z,_.__i=g,h=re(t,_,u,a,s,r,i,c,p,l),f=_.__e,(u.ref!=_.ref||8&u.__u)&&(u.ref&&ae(u.ref,null,_,u),_.ref&&l.push(_.ref,_.__c||f,_)),b=b||f,4&_.__u?(c=Ae(_,c,t,!u.__v),u.__e&&(u.__e=null)):typeof _.type=="function"&&h!==void 0?c=h:f&&(c=f.nextSibling),_.__u&=-21);return n.__e=b,c}function pt(t,e,n,o,a){var s,r,i,c,p,l,g,u,_,f=n.length,b=f,h=0,d=0,m=t.__k=Array(a);for(s=0;s<a;s++)(r=e[s])!=null&&typeof r!="boolean"&&typeof r!="function"?(typeof r!="object"||r.constructor===String?r=m[s]=H(null,r):oe(r)?r=m[s]=H(Q,{children:r}):r.constructor===L&&r.__b?r=m[s]=H(r.type,r.props,r.key,r.ref,r.__v):m[s]=r,c=s+h,r.__=t,r.__b=t.__b+1,i=null,~(p=r.__i=ht(r,n,c,b))&&(b--,(i=n[p])&&(i.__u|=2)),i&&i.__v?(r.__u|=16,p==c-1?h--:p==c+1?h++:p!=c&&(p>c?h--:h++,d=1)):(~p||(a>f?h--:a<f&&h++),typeof r.type!="function"&&(r.__u|=4))):m[s]=null;if(d){for(l=[],g=[],s=0;s<a;s++)if((r=m[s])&&16&r.__u){for(h=0,u=l.length;h<u;)l[_=h+u>>1]<r.__i?h=_+1:u=_;l[h]=r.__i,g[s]=h+1}for(h=l.length;s--;)g[s]&&(g[s]==h?h--:m[s].__u|=4)}if(b)for(s=0;s<f;s++)!(i=n[s])||2&i.__u||(i.__e==o&&(o=A(i)),ie(i,i));return o}function Ae(t,e,n,o){var a,s,r,i;if(typeof t.type=="function"){if(t.props.__P)return e;if(a=t.__k)for(s=0;s<a.length;s++)a[s]&&(a[s].__=t,e=Ae(a[s],e,n,!1));return e}for(e&&!e.parentNode&&(e=A(t))&&!e.parentNode&&(e=null),r=t.__e,i=e;i&&i.nodeType==8;)i=i.nextSibling;for(r!=i&&(!o&&n.moveBefore&&r.parentNode?n.moveBefore(r,e):n.insertBefore(r,e||null)),e=r;(e=e&&e.nextSibling)&&e.nodeType==8&&!e.data.startsWith("$s"););return e}function ht(t,e,n,o){var a,s=t.key,r=t.type,i=e[n],c=i&&!(2&i.__u);if(i===null&&s==null||c&&s==i.key&&r==i.type)return n;if(o>(c?1:0)){for(a=n-1;a>=0;a--)if((i=e[a])&&!(2&i.__u)&&s==i.key&&r==i.type)return a;for(a=n+1;a<e.length;a++)if((i=e[a])&&!(2&i.__u)&&s==i.key&&r==i.type)return a}return-1}function $e(t,e,n){n==null&&(n=""),e[0]=="-"?t.setProperty(e,n):t[e]=n}function W(t,e,n,o,a){var s,r;if(e=="style")if(typeof n=="string")t.style.cssText=n;else{if(typeof o=="string"&&(t.style.cssText=o=""),o)for(e in o)n&&e in n||$e(t.style,e);if(n)for(e in n)o&&n[e]==o[e]||$e(t.style,e,n[e])}else if(e[0]=="o"&&e[1]=="n")typeof n!="function"&&(n=null),typeof o!="function"&&(o=null),(t.__e||(t.__e={}))[e]=n,n&&o||(r=te[e]||(te[e]=gt(e)),(t.__a||(t.__a={}))[e]=ne,s=e!=(e=e.replace(Se,"$1")),(e=e.slice(2))[0]<"a"&&(e=e.toLowerCase()),n?t.addEventListener(e,r,s):t.removeEventListener(e,r,s));else{if(a=="http://www.w3.org/2000/svg")e=e.replace(/xlink(H|:h)/,"h").replace(/sName$/,"s");else if(e!="width"&&e!="height"&&e!="href"&&e!="list"&&e!="form"&&e!="tabIndex"&&e!="download"&&e!="rowSpan"&&e!="colSpan"&&e!="role"&&e!="popover"&&e in t)try{return void(t[e]=n??"")}catch{}if(typeof n=="function")return;n==null||n===!1&&e[4]!="-"?t.removeAttribute(e):t.setAttribute(e,e=="popover"&&n==1?"":n)}}function gt(t){return function(e){var n=this.__e;if(n){if(n=n[t],e[B]==null)e[B]=ne++;else if(e[B]<this.__a[t])return;return n($.event?$.event(e):e)}}}function re(t,e,n,o,a,s,r,i,c,p){var l,g,u,_,f,b,h,d,m,k,y,D,ye,q,E,be,T,N,P=e.type;if(e.constructor!==L)return null;128&n.__u&&(c=32&n.__u,l=n.__c.__z)&&(e.__u|=c,g=s=[],l.nodeType==8?i=V(l,s):s.push(l),i=s[0]||i),(l=$.__b)&&l(e);e:if(typeof P=="function"){u=r.length;try{if(d=e.props,m=(l=P.prototype)&&l.render,k=(l=P.contextType)&&o[l.__c],y=l?k?k.props.value:l.__:o,(_=n.__c)?(e.__c=_,2&_.__g&&(_.__g|=1)):(m?e.__c=_=new P(d,y):(e.__c=_=new j(d,y),_.constructor=P,_.render=yt),k&&k.sub(_),_.state||(_.state={}),_.__n=o,_.__g|=8,_.__h=[],_.__k=[]),m&&(_.__s||(_.__s=_.state),P.getDerivedStateFromProps&&(_.__s==_.state&&(_.__s=I({},_.__s)),I(_.__s,P.getDerivedStateFromProps(d,_.__s)))),f=_.props,b=_.state,_.__v=e,n.__c){if(d!==f&&m&&!P.getDerivedStateFromProps&&_.componentWillReceiveProps&&_.componentWillReceiveProps(d,y),e.__v==n.__v&&!(8&_.__g)||!(4&_.__g)&&_.shouldComponentUpdate&&_.shouldComponentUpdate(d,_.__s,y)===!1){e.__v!=n.__v&&(_.props=d,_.state=_.__s,_.__g&=-9),e.__e=n.__e,e.__k=n.__k,e.__k.some(function(C){C&&(C.__=e)}),G.push.apply(_.__h,_.__k),_.__k=[],_.__h.length&&r.push(_),i=A(n);break e}_.componentWillUpdate&&_.componentWillUpdate(d,_.__s,y),m&&_.componentDidUpdate&&_.__h.push(function(){_.componentDidUpdate(f,b,h)})}else m&&!P.getDerivedStateFromProps&&_.componentWillMount&&_.componentWillMount(),m&&_.componentDidMount&&_.__h.push(_.componentDidMount);_.context=y,_.props=d,_.__P=t,_.__g&=-5,D=$.__r,ye=m?25:0;do _.__g&=-9,D&&D(e),l=_.render(_.props,_.state=_.__s,_.context);while(8&_.__g&&++ye<25);m&&(G.push.apply(_.__h,_.__k),_.__k=[]),_.state=_.__s,_.getChildContext&&(o=I({},o,_.getChildContext())),m&&n.__c&&_.getSnapshotBeforeUpdate&&(h=_.getSnapshotBeforeUpdate(f,b)),q=l&&l.type===Q&&l.key==null?l.props.children:l,d.__P&&(l=i,a=(t=d.__P).namespaceURI,c=s=null,n.props&&n.props.__P!=t&&(n.__k.some(function(C){C&&ie(C,C)}),n.__k=null),i=n.__k?A(n,0):null),i=Me(t,oe(q)?q:[q],e,n,o,a,s,r,i,c,p),d.__P&&(e.__e=null,i=l),e.__u&=-161,g&&g.some(R),_.__h.length&&r.push(_),1&_.__g&&(_.__g&=-4)}catch(C){if(r.length=u,e.__v=null,c||s)if(C&&C.then){if(e.__u|=128|c,s){for(~(T=s.indexOf(i||void 0))||(T=s.length);(N=s[T-1])&&N.nodeType==8;)T--;for(;T<s.length;T++)if(N=s[T])if(s[T]=null,E){if(N==be)break}else{if(N.nodeType!=8)break;N.data.startsWith("$s")&&(be=V(E=N))}}if(!E){for(;i&&i.nodeType==8&&i.nextSibling;)i=i.nextSibling;E=i}(l=V(E=e.__c.__z||(e.__c.__z=E)))?(e.__e=E,i=l):e.__e=i,i=i&&i.nextSibling}else s&&s.some(R);else e.__e=n.__e;e.__k||(e.__k=n.__k||[]),C&&C.then||Ee(e),$.__e(C,e,n)}}else i=e.__e=vt(n.__e,e,n,o,a,s,r,c,p,t);return(l=$.diffed)&&l(e),i}function V(t,e){if(t&&t.nodeType==8&&t.data.startsWith("$s"))for(var n=1;t=t.nextSibling;){if(t.nodeType==8){if(t.data.startsWith("$s"))n++;else if(t.data.startsWith("/$s")&&!--n)return t}e&&e.push(t)}}function Ee(t){t&&(t.__c&&(t.__c.__g|=4),t.__k&&t.__k.some(Ee))}function Ne(t,e,n){for(var o=0;o<n.length;)ae(n[o++],n[o++],n[o++]);$.__c&&$.__c(e,t),t.some(function(a){try{t=a.__h,a.__h=[],t.some(function(s){s.call(a)})}catch(s){$.__e(s,a.__v)}})}function vt(t,e,n,o,a,s,r,i,c,p){var l,g,u,_,f,b,h,d,m=n.props||z,k=e.props,y=e.type;if(y=="svg"?a="http://www.w3.org/2000/svg":y=="math"?a="http://www.w3.org/1998/Math/MathML":a||(a="http://www.w3.org/1999/xhtml"),s){for(l=0;l<s.length;l++)if((f=s[l])&&(y?f.localName==y:f.nodeType==3)){t=f,s[l]=null;break}}if(!t){if(d=p.ownerDocument||document,!y)return d.createTextNode(k);t=d.createElementNS(a,y,k.is?k:p),i&&($.__m&&$.__m(e,s),i=!1),s=null}if(y){if(p=y=="template"&&t.content||t,s=y=="textarea"&&k.defaultValue!=null?null:s&&se.call(p.childNodes),!i&&s)for(m={},l=0;l<t.attributes.length;l++)m[(f=t.attributes[l]).name]=f.value;for(l in m)f=m[l],l=="dangerouslySetInnerHTML"?u=f:l=="children"||l in k||l=="value"&&"defaultValue"in k||l=="checked"&&"defaultChecked"in k||W(t,l,null,f,a);for(l in k)f=k[l],l=="children"?_=f:l=="dangerouslySetInnerHTML"?g=f:l=="value"?b=f:l=="checked"?h=f:i&&typeof f!="function"||m[l]===f||W(t,l,f,m[l],a);g?(i||u&&(g.__html==u.__html||g.__html==t.innerHTML)||(t.innerHTML=g.__html),e.__k=[]):(u&&(t.textContent=""),(y=="foreignObject"||a=="http://www.w3.org/1998/Math/MathML"&&mt.test(y))&&(a="http://www.w3.org/1999/xhtml"),Me(p,oe(_)?_:[_],e,n,o,a,s,r,s?s[0]:n.__k&&A(n,0),i,c),s&&s.some(R)),i&&y!="textarea"||(l="value",y=="progress"&&b==null?t.removeAttribute(l):b==null||b===t[l]&&(y!="progress"||b)||W(t,l,b,m[l],a),l="checked",h!=null&&h!=t[l]&&W(t,l,h,m[l],a))}else m===k||i&&t.data==k||(t.data=k);return t}function ae(t,e,n,o){try{typeof t=="function"?e?e.__x=t(e)||1:o&&(o=o.__c||o.__e)&&(e=o.__x)&&(o.__x=null,typeof e=="function"?e():t(null)):t.current=e}catch(a){$.__e(a,n)}}function ie(t,e,n){var o,a,s,r;if($.unmount&&$.unmount(t),!(o=t.ref)||o.current&&o.current!=t.__e||ae(o,null,e,t),o=t.__c){if(o.componentWillUnmount)try{o.componentWillUnmount()}catch(i){$.__e(i,e)}o.__P=o.__n=null}if(o=t.__k)for(r=0;r<o.length;r++)o[r]&&ie(o[r],e,typeof t.type!="function"||n&&!t.props.__P);!n&&(o=t.__c)&&(o=o.__z)&&(a=V(o,s=[]))&&(o==t.__e&&s.some(R),R(a),R(o)),n||R(t.__e),t.__e=t.__c=t.__=null}function yt(t,e,n){return this.constructor(t,n)}function Re(t,e){var n,o,a,s;$.__&&$.__(t,e),e.nodeType==9&&(e=e.documentElement),o=(n=t&&32&t.__u)?null:e.__k,e.__k=H(Q,{children:[t]}),a=[],s=[],re(e,e.__k,o||z,z,e.namespaceURI,o?null:e.firstChild?se.call(e.childNodes):null,a,o?o.__e:e.firstChild,n,s),Ne(a,e.__k,s),e.__k.props.children=null}$={__e:function(t,e,n,o){for(var a,s,r;e=e.__;)if((a=e.__c)&&!(1&a.__g)){a.__g|=4;try{if((r=(s=a.constructor)&&s.getDerivedStateFromError)&&a.setState(s.getDerivedStateFromError(t)),a.componentDidCatch&&(a.componentDidCatch(t,o||{}),r=1),r&&8&a.__g)return void(a.__g|=2)}catch(i){t=i}}throw J=0,t}},xe=0,ct=function(t){return t!=null&&t.constructor===L},j.prototype.setState=function(t,e){var n=this.__s;n&&n!=this.state||(n=this.__s=I({},this.state)),typeof t=="function"&&(t=t(I({},n),this.props)),t&&(I(n,t),this.__v&&(e&&this.__k.push(e),ke(this)))},j.prototype.forceUpdate=function(t){this.__v&&(this.__g|=4,t&&this.__h.push(t),ke(this))},j.prototype.render=Q,M=[],J=0,we=function(t,e){return t.__v.__b-e.__v.__b},B=Symbol(),Se=/(PointerCapture)$|Capture$/i,ne=0,te={},dt=0;var K,w,_e,Ie,le=Object.is,X=0,We=[],ue=[],x=$,De=x.__b,He=x.__r,Le=x.diffed,Oe=x.__c,Ke=x.unmount,Ue=x.__;function de(t,e){x.__h&&x.__h(w,t,X||e),X=0;var n=w.__H||(w.__H={__:[],__h:[]});return t>=n.__.length&&n.__.push({}),n.__[t]}function S(t){return X=1,bt(Je,t)}function bt(t,e,n){var o=de(K++,2);if(o.t=t,!o.__c&&(o.__=[n?n(e):Je(void 0,e),function(s){var r=(o.__N||o.__)[0],i=o.t(r,s);le(r,i)||(o.__N=[i,o.__[1]],o.__c.setState({}))}],o.__c=w,!w.__f)){w.__f=!0;var a=w.shouldComponentUpdate;w.shouldComponentUpdate=function(s,r,i){var c=this.__H;if(!c)return!0;var p=!1,l=this.props!=s;if(c.__.some(function(u){u.__N&&(p=!0,le(u.__[0],u.__N[0])||(l=!0))}),a){var g=a.call(this,s,r,i);return p?g||l:g}return!p||l}}return o.__}function Be(t,e){var n=de(K++,3);!x.__s&&Ve(n.__H,e)&&(n.__P=!0,n.__=t,n.u=e,w.__H.__h.push(n))}function je(t){return X=5,kt(function(){return{current:t}},[])}function kt(t,e){var n=de(K++,7);return Ve(n.__H,e)&&(n.__=t(),n.__H=e),n.__}function $t(){var t;do{for(;t=ue.shift();)try{O(t)}catch(n){x.__e(n,{__:(t=t.__P)&&t.__v})}for(;t=We.shift();){var e=t.__H;if(t.__P&&e)try{e.__h.some(O),e.__h.some(ce),e.__h=[]}catch(n){e.__h=[],x.__e(n,t.__v)}}}while(ue.length)}x.__b=function(t){w=null,De&&De(t)},x.__=function(t,e){t&&e.__k&&e.__k.__m&&(t.__m=e.__k.__m),Ue&&Ue(t,e)},x.__r=function(t){He&&He(t),K=0;var e=(w=t.__c).__H;e&&(_e==w?w.__h=[]:(e.__h.some(O),e.__h.some(ce),K=0),e.__h=[],e.__.some(function(n){n.__N&&(n.__=n.__N),n.u=n.__N=void 0})),_e=w},x.diffed=function(t){Le&&Le(t);var e=t.__c;e&&e.__H&&(e.__H.__h.length&&qe(We.push(e)),e.__H.__.some(function(n){n.u&&(n.__H=n.u)})),_e=w=null},x.__c=function(t,e){e.some(function(n){try{n.__h.some(O),n.__h=n.__h.filter(function(o){return!o.__||ce(o)})}catch(o){n.__h=[function(){throw o}]}}),Oe&&Oe(t,e)},x.unmount=function(t){Ke&&Ke(t);var e,n,o=t.__c;o&&o.__H&&(o.__H.__.some(function(a){try{if(a.__P&&a.__c){if(n===void 0){for(n=t.__;n&&(!n.__c||!n.__c.__P);)n=n.__;n=n&&n.__c}a.__P=n,qe(ue.push(a))}else O(a)}catch(s){e=s}}),o.__H=void 0,e&&x.__e(e,o.__v))};var Fe=typeof requestAnimationFrame=="function";function xt(t){var e,n=function(){clearTimeout(o),Fe&&cancelAnimationFrame(e),setTimeout(t)},o=setTimeout(n,35);Fe&&(e=requestAnimationFrame(n))}function qe(t){t!=1&&Ie==x.requestAnimationFrame||((Ie=x.requestAnimationFrame)||xt)($t)}function O(t){var e=w,n=t.__c;typeof n=="function"&&(t.__c=void 0,n()),w=e}function ce(t){var e=w;t.__c=t.__(),w=e}function Ve(t,e){return!t||t.length!=e.length||e.some(function(n,o){return!le(n,t[o])})}function Je(t,e){return typeof e=="function"?e(t):e}var Ge=function(t,e,n,o){var a;e[0]=0;for(var s=1;s<e.length;s++){var r=e[s++],i=e[s]?(e[0]|=r?1:2,n[e[s++]]):e[++s];r===3?o[0]=i:r===4?o[1]=Object.assign(o[1]||{},i):r===5?(o[1]=o[1]||{})[e[++s]]=i:r===6?o[1][e[++s]]+=i+"":r?(a=t.apply(i,Ge(t,i,n,["",null])),o.push(a),i[0]?e[0]|=2:(e[s-2]=0,e[s]=a)):o.push(i)}return o},ze=new Map;function Qe(t){var e=ze.get(this);return e||(e=new Map,ze.set(this,e)),(e=Ge(this,e.get(t)||(e.set(t,e=(function(n){for(var o,a,s=1,r="",i="",c=[0],p=function(u){s===1&&(u||(r=r.replace(/^\s*\n\s*|\s*\n\s*$/g,"")))?c.push(0,u,r):s===3&&(u||r)?(c.push(3,u,r),s=2):s===2&&r==="..."&&u?c.push(4,u,0):s===2&&r&&!u?c.push(5,0,!0,r):s>=5&&((r||!u&&s===5)&&(c.push(s,0,r,a),s=6),u&&(c.push(s,u,0,a),s=6)),r=""},l=0;l<n.length;l++){l&&(s===1&&p(),p(l));for(var g=0;g<n[l].length;g++)o=n[l][g],s===1?o==="<"?(p(),c=[c],s=3):r+=o:s===4?r==="--"&&o===">"?(s=1,r=""):r=o+r[0]:i?o===i?i="":r+=o:o==='"'||o==="'"?i=o:o===">"?(p(),s=1):s&&(o==="="?(s=5,a=r,r=""):o==="/"&&(s<5||n[l][g+1]===">")?(p(),s===3&&(c=c[0]),s=c,(c=c[0]).push(2,0,s),s=0):o===" "||o==="	"||o===`
`||o==="\r"?(p(),s=2):r+=o),s===3&&r==="!--"&&(s=4,c=c[0])}return p(),c})(t)),e),arguments,[])).length>1?e:e[0]}var v=Qe.bind(Ce);function Xe(t){let[e,n]=S(""),[o,a]=S(""),s=async i=>{t.setMessage("\u2026");try{t.setMessage(await i())}catch(c){t.setMessage(`error: ${c.message}`)}};return v`
    <section class="admin" data-testid="admin">
      <form onSubmit=${i=>{i.preventDefault(),s(()=>t.actions.load(e.trim(),o.trim()))}}>
        <input placeholder="adapter name" value=${e} onInput=${i=>n(i.target.value)} name="lora_name" required />
        <input placeholder="directory on the server" value=${o} onInput=${i=>a(i.target.value)} name="lora_path" required class="wide" />
        <button type="submit">load</button>
        <button type="button" onClick=${()=>s(t.actions.rescan)}>rescan store</button>
      </form>
      <output data-testid="admin-message">${t.message}</output>
    </section>
  `}var Ye="loraplex.keys";function Ze(){try{let t=JSON.parse(sessionStorage.getItem(Ye)??"{}");return{api:String(t.api??""),admin:String(t.admin??"")}}catch{return{api:"",admin:""}}}function et(t){sessionStorage.setItem(Ye,JSON.stringify(t))}var U=class extends Error{constructor(n,o){super(o);this.status=n}status};function me(t,e){let n={};return t&&(n.authorization=`Bearer ${t}`),e&&(n["content-type"]="application/json"),n}async function fe(t){let e=await t.text(),n=e||t.statusText;try{n=JSON.parse(e).error?.message??n}catch{}return new U(t.status,n)}async function tt(t,e,n){let o=await fetch(t,{headers:me(e,!1),signal:n});if(!o.ok)throw await fe(o);return await o.json()}async function Y(t,e,n,o){let a=await fetch(t,{method:"POST",headers:me(e,!0),body:JSON.stringify(n),signal:o});if(!a.ok)throw await fe(a);return a.text()}async function nt(t,e,n,o){let a=await fetch(t,{method:"POST",headers:me(e,!0),body:JSON.stringify(n),signal:o});if(!a.ok||!a.body)throw await fe(a);return a.body}var pe=320,F=80;function wt(t,e,n){let o=n>1?pe/(n-1):0,a=n-t.length;return t.map((s,r)=>`${r===0?"M":"L"}${((a+r)*o).toFixed(1)},${(F-s/e*F).toFixed(1)}`).join(" ")}function he(t){let e=Math.max(2,...t.series.map(o=>o.values.length)),n=t.max>0?t.max:1;return v`
    <figure class="chart" data-testid=${t.testId}>
      <figcaption>
        ${t.title}
        ${t.series.map(o=>v`<span class=${`legend ${o.className}`}>${o.name} ${o.values.at(-1)?.toFixed(t.digits)??"\u2013"}${t.unit}</span>`)}
      </figcaption>
      <svg viewBox=${`0 0 ${pe} ${F}`} preserveAspectRatio="none" role="img" aria-label=${t.title}>
        <line x1="0" y1=${F} x2=${pe} y2=${F} class="axis" />
        ${t.series.map(o=>v`<path d=${wt(o.values,n,e)} class=${`line ${o.className}`} data-points=${o.values.length} />`)}
      </svg>
      <div class="scale">max ${t.max.toFixed(0)}${t.unit}</div>
    </figure>
  `}var ot=(t,e=0)=>t===null?"\u2013":t.toFixed(e);function St(t){let{m:e,actions:n}=t;return v`
    <tr data-model=${e.id} class=${e.error?"failed":""}>
      <td class="name" title=${e.error??""}>${e.id}</td>
      <td>${e.kind}${e.source?v` <small>(${e.source})</small>`:null}</td>
      <td>
        <span class=${`tier tier-${e.tier??"base"}`} data-field="tier">${e.tier??"resident"}</span>
        ${e.pinned?v` <small data-field="pinned" title="kept in the host tier">pinned</small>`:null}
      </td>
      <td data-field="version">${e.version??"\u2013"}</td>
      <td data-field="rank">${e.rank??"\u2013"}</td>
      <td class="num" data-field="running">${e.running}</td>
      <td class="num" data-field="waiting">${e.waiting}</td>
      <td class="num" data-field="requests">${e.requests}</td>
      <td class="num" data-field="tokens">${e.tokens}</td>
      <td class="num" data-field="tokens-per-second">${ot(e.tokensPerSecond,1)}</td>
      <td class="num" data-field="ttft">${ot(e.ttftMs)}</td>
      ${n?v`<td>${e.kind==="adapter"?v`<button class="small" data-action="pin" onClick=${()=>n.pin(e.id,!e.pinned)}>${e.pinned?"unpin":"pin"}</button>
                    <button class="small" data-action="unload" onClick=${()=>n.unload(e.id)}>unload</button>`:null}</td>`:null}
    </tr>
  `}function st(t){let{state:e}=t,n=e.engine,o=e.history.map(i=>i.kvUse*100),a=e.history.map(i=>i.running),s=e.history.map(i=>i.waiting),r=Math.max(4,...a,...s);return v`
    <section class="live">
      <div class="totals" data-testid="totals">
        <div><b data-field="running">${n?.running??0}</b> running</div>
        <div><b data-field="waiting">${n?.waiting??0}</b> waiting</div>
        <div><b>${n?`${n.kvBlocksUsed} / ${n.kvBlocksTotal}`:"\u2013"}</b> KV blocks</div>
        <div><b>${n?`${n.adapterCache.slotsUsed} / ${n.adapterCache.slotsTotal}`:"\u2013"}</b> slots</div>
        <div><b>${n?`${n.adapterCache.hostUsed} / ${n.adapterCache.hostTotal}`:"\u2013"}</b> host cache</div>
        <div><b>${e.maxModelLen}</b> max model len</div>
      </div>
      <div class="charts">
        <${he} title="KV cache use" series=${[{name:"used",values:o,className:"s-kv"}]} max=${100} unit="%" digits=${1} testId="chart-kv" />
        <${he}
          title="Queue"
          series=${[{name:"running",values:a,className:"s-running"},{name:"waiting",values:s,className:"s-waiting"}]}
          max=${r}
          unit=""
          digits=${0}
          testId="chart-queue"
        />
      </div>
      <table class="models" data-testid="models">
        <thead>
          <tr>
            <th>model</th><th>kind</th><th>tier</th><th>version</th><th>rank</th>
            <th class="num">running</th><th class="num">waiting</th><th class="num">requests</th>
            <th class="num">tokens</th><th class="num">tok/s</th><th class="num">TTFT ms</th>
            ${t.actions?v`<th></th>`:null}
          </tr>
        </thead>
        <tbody>
          ${e.models.map(i=>v`<${St} key=${i.id} m=${i} actions=${t.actions} />`)}
        </tbody>
      </table>
      <p class="note">
        Per model: waiting until the first token, then running; tok/s over the last 10 s; TTFT the median of the
        last 16 requests.
      </p>
    </section>
  `}function rt(t,e){let n={model:t,max_tokens:e.maxTokens,temperature:e.temperature,top_p:e.topP,stream:!0,...e.seed===null?{}:{seed:e.seed}};if(e.mode==="prompt")return{path:"/v1/completions",body:{...n,prompt:e.prompt,logprobs:0}};let o=[...e.system.trim()?[{role:"system",content:e.system}]:[],{role:"user",content:e.prompt}];return{path:"/v1/chat/completions",body:{...n,messages:o,logprobs:!0}}}function at(t){let e=t.choices?.[0]?.logprobs;return e?e.tokens??e.content?.map(n=>n.token)??[]:[]}var Z=class{buffer="";done=!1;feed(e){this.buffer=(this.buffer+e).replace(/\r\n/g,`
`);let n=[],o=this.buffer.indexOf(`

`);for(;o>=0;){let a=this.buffer.slice(0,o);this.buffer=this.buffer.slice(o+2);let s=a.split(`
`).filter(r=>r.startsWith("data:")).map(r=>r.slice(5).trimStart()).join(`
`);s==="[DONE]"?this.done=!0:s&&n.push(JSON.parse(s)),o=this.buffer.indexOf(`

`)}return n}};function ge(t){return{model:t,status:"waiting",tokens:[],ttftMs:null,tokensPerSecond:null,finishReason:null,error:null}}async function it(t,e,n,o,a){let s=ge(t),r=p=>{s={...s,...p},a(s)};r({});let i=performance.now(),c=0;try{let{path:p,body:l}=rt(t,e),g=(await nt(p,n,l,o)).getReader(),u=new TextDecoder,_=new Z;for(;!_.done;){let{value:f,done:b}=await g.read();if(b)break;for(let h of _.feed(u.decode(f,{stream:!0}))){if(h.error)throw new Error(h.error.message??"the stream failed");let d=at(h),m=performance.now();d.length>0&&s.ttftMs===null&&(c=m,r({ttftMs:m-i,status:"streaming"}));let k=[...s.tokens,...d],y=k.length>1&&m>c?(k.length-1)*1e3/(m-c):null;r({tokens:k,tokensPerSecond:y??s.tokensPerSecond,finishReason:h.choices?.[0]?.finish_reason??s.finishReason})}}r({status:"done"})}catch(p){r({status:"error",error:o.aborted?"stopped":p.message})}}function _t(t,e){let n=Math.min(t.tokens.length,e.tokens.length);for(let o=0;o<n;o++)if(t.tokens[o]!==e.tokens[o])return o;return t.done&&e.tokens.length>n||e.done&&t.tokens.length>n?n:null}var ve=5,lt=(t,e=0)=>t===null?"\u2013":t.toFixed(e);function Ct(t){let{c:e,reference:n}=t,o=s=>s.status==="done"||s.status==="error",a=n?_t({tokens:n.tokens,done:o(n)},{tokens:e.tokens,done:o(e)}):null;return v`
    <article class=${`column ${e.status}`} data-column=${e.model} data-status=${e.status}>
      <header>
        <b>${e.model}</b>
        <span class="status">${e.status}${e.finishReason?` (${e.finishReason})`:""}</span>
      </header>
      <dl class="figures">
        <div><dt>TTFT</dt><dd data-field="ttft">${lt(e.ttftMs)} ms</dd></div>
        <div><dt>tok/s</dt><dd data-field="tokens-per-second">${lt(e.tokensPerSecond,1)}</dd></div>
        <div><dt>tokens</dt><dd data-field="tokens">${e.tokens.length}</dd></div>
        <div>
          <dt>diverges</dt>
          <dd data-field="divergence">${n?a===null?"\u2013":`at ${a}`:"reference"}</dd>
        </div>
      </dl>
      ${e.error?v`<p class="error">${e.error}</p>`:null}
      <pre class="text">${e.tokens.map((s,r)=>v`<span class=${a!==null&&r>=a?r===a?"tok diverged first":"tok diverged":"tok"}>${s}</span>`)}</pre>
    </article>
  `}function ut(t){let[e,n]=S(null),[o,a]=S({mode:"prompt",prompt:"Once upon a time",system:"",maxTokens:32,temperature:0,topP:1,seed:null}),[s,r]=S([]),i=je(null),c=(e??t.models.slice(0,ve)).filter(u=>t.models.includes(u)),p=u=>{n(c.includes(u)?c.filter(_=>_!==u):[...c,u])},l=(u,_)=>f=>a({...o,[u]:_(f.target.value)});return v`
    <section class="playground" data-testid="playground">
      <form onSubmit=${async u=>{u.preventDefault(),i.current?.abort();let _=new AbortController;i.current=_;let f=[...c],b=f.map(ge);r(b);let h=d=>{i.current===_&&(b=b.map(m=>m.model===d.model?d:m),r(b))};await Promise.all(f.map(d=>it(d,o,t.apiKey,_.signal,h))),i.current===_&&(i.current=null)}}>
        <fieldset class="models-pick">
          <legend>models (the first is the reference; at most ${ve})</legend>
          ${t.models.map(u=>v`<label><input type="checkbox" name="model" value=${u} checked=${c.includes(u)} disabled=${!c.includes(u)&&c.length>=ve} onChange=${()=>p(u)} /> ${u}</label>`)}
        </fieldset>
        <fieldset class="mode">
          <label><input type="radio" name="mode" value="prompt" checked=${o.mode==="prompt"} onChange=${()=>a({...o,mode:"prompt"})} /> prompt</label>
          <label><input type="radio" name="mode" value="chat" checked=${o.mode==="chat"} onChange=${()=>a({...o,mode:"chat"})} /> chat</label>
        </fieldset>
        ${o.mode==="chat"?v`<textarea name="system" rows="1" placeholder="system message (optional)" value=${o.system} onInput=${l("system",String)} />`:null}
        <textarea name="prompt" rows="3" value=${o.prompt} onInput=${l("prompt",String)} required />
        <fieldset class="sampling">
          <label>max tokens <input name="max_tokens" type="number" min="1" value=${o.maxTokens} onInput=${l("maxTokens",Number)} /></label>
          <label>temperature <input name="temperature" type="number" min="0" max="2" step="0.05" value=${o.temperature} onInput=${l("temperature",Number)} /></label>
          <label>top p <input name="top_p" type="number" min="0" max="1" step="0.05" value=${o.topP} onInput=${l("topP",Number)} /></label>
          <label>seed <input name="seed" type="number" value=${o.seed??""} onInput=${l("seed",u=>u===""?null:Number(u))} /></label>
          <button type="submit" disabled=${c.length===0}>run</button>
          <button type="button" onClick=${()=>i.current?.abort()}>stop</button>
        </fieldset>
      </form>
      <div class="columns" data-testid="columns">
        ${s.map((u,_)=>v`<${Ct} key=${u.model} c=${u} reference=${_===0?null:s[0]} />`)}
      </div>
    </section>
  `}var Pt=1e3;function Tt(t){let[e,n]=S(t.keys.api),[o,a]=S(t.keys.admin),s=r=>{r.preventDefault(),t.onSave({api:e,admin:o})};return v`
    <form class=${`keys ${t.needed?"needed":""}`} onSubmit=${s} data-testid="keys">
      ${t.needed?v`<span class="ask">This server needs its API key.</span>`:null}
      <input type="password" name="api_key" placeholder="API key" value=${e} onInput=${r=>n(r.target.value)} autocomplete="off" />
      <input type="password" name="admin_key" placeholder="admin key (optional)" value=${o} onInput=${r=>a(r.target.value)} autocomplete="off" />
      <button type="submit">use keys</button>
    </form>
  `}function Mt(){let[t,e]=S(Ze),[n,o]=S(null),[a,s]=S(null),[r,i]=S(""),[c,p]=S(0);Be(()=>{let d=new AbortController,m=0,k=async()=>{try{o(await tt("/ui/api/state",t.api,d.signal)),s(null)}catch(y){if(d.signal.aborted)return;let D=y instanceof U?y.status:0;s({status:D,message:y.message}),D===401&&o(null)}d.signal.aborted||(m=window.setTimeout(k,Pt))};return k(),()=>{d.abort(),clearTimeout(m)}},[t,c]);let l=d=>{et(d),e(d)},g=n?.admin.ownKey?t.admin:t.api,u=d=>(p(m=>m+1),d),_={load:async(d,m)=>u(await Y("/v1/load_lora_adapter",g,{lora_name:d,lora_path:m})),rescan:async()=>u(await Y("/v1/rescan_lora_adapters",g,{}))},f=async(d,m)=>{try{i(u(await Y(d,g,m)))}catch(k){i(`error: ${k.message}`)}},b={unload:d=>f("/v1/unload_lora_adapter",{lora_name:d}),pin:(d,m)=>f("/v1/pin_lora_adapter",{lora_name:d,pinned:m})},h=n?.admin.enabled===!0&&(!n.admin.ownKey||t.admin!=="");return v`
    <header class="top">
      <h1>loraplex</h1>
      <span class="model" data-testid="model">${n?n.model:""}</span>
      <${Tt} keys=${t} onSave=${l} needed=${a?.status===401} />
    </header>
    ${a?v`<p class="problem" data-testid="problem">${a.status===503?"The server is loading (or draining): ":""}${a.message}</p>`:null}
    ${n?v`
          <h2>Live</h2>
          <${st} state=${n} actions=${h?b:null} />
          ${h?v`<h2>Adapters</h2><${Xe} actions=${_} message=${r} setMessage=${i} />`:null}
          <h2>A/B playground</h2>
          <${ut} models=${n.models.filter(d=>!d.error).map(d=>d.id)} apiKey=${t.api} />
        `:null}
  `}Re(v`<${Mt} />`,document.getElementById("app"));
